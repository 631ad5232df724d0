"""Python's ThreadPoolExecutor doing the same work as bench_threads.

Fewer tasks than the C programs (Python is ~100x slower per task); the
figures are per task, so they compare directly.
    py_threads.py [tasks=100000] [roundtrips=2000]
"""
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def empty(_=None):
    return None


def report(metric, value, unit):
    print(f"python {metric} {value:.3f} {unit}", flush=True)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    rt = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with ThreadPoolExecutor(max_workers=2) as ex:
        t0 = time.perf_counter()
        fs = [ex.submit(empty) for _ in range(n)]
        for f in fs:
            f.result()
        report("futures_ns_per_task", (time.perf_counter() - t0) * 1e9 / n, "ns")
    with ThreadPoolExecutor(max_workers=2) as ex:
        t0 = time.perf_counter()
        for _ in ex.map(empty, range(n)):
            pass
        report("map_ns_per_task", (time.perf_counter() - t0) * 1e9 / n, "ns")
    with ThreadPoolExecutor(max_workers=2) as ex:
        samples = []
        for _ in range(rt):
            t0 = time.perf_counter()
            ex.submit(empty).result()
            samples.append((time.perf_counter() - t0) * 1e6)
        report("roundtrip_us", statistics.median(samples), "us")


def fork_join(depth, timeout=10.0):
    """The recursive fork-join of bench_threads on 2 workers.  A worker that
    waits for its children holds its thread, so with 2 workers this
    deadlocks; report so after `timeout` seconds."""
    ex = ThreadPoolExecutor(max_workers=2)

    def task(d):
        if d == 0:
            return
        fs = [ex.submit(task, d - 1) for _ in range(2)]
        for f in fs:
            f.result()

    done = threading.Event()
    t0 = time.perf_counter()
    fut = ex.submit(task, depth)
    fut.add_done_callback(lambda _: done.set())
    if done.wait(timeout):
        report("forkjoin_ns_per_task",
               (time.perf_counter() - t0) * 1e9 / (2 ** (depth + 1) - 1), "ns")
        ex.shutdown()
        return True
    print(f"# python ThreadPoolExecutor fork-join depth {depth} on 2 workers: "
          f"deadlocked (no result after {timeout:.0f} s)", file=sys.stderr,
          flush=True)
    return False


if __name__ == "__main__":
    main()
    depth = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    if not fork_join(depth):
        os._exit(0)  # its workers are stuck for good: do not join them
