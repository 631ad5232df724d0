"""Python's ThreadPoolExecutor doing the same work as bench_threads.

Fewer tasks than the C programs (Python is ~100x slower per task); the
figures are per task, so they compare directly.
    py_threads.py [tasks=100000] [roundtrips=2000]
"""
import statistics
import sys
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


if __name__ == "__main__":
    main()
