"""Python's ProcessPoolExecutor doing the same work as bench_procs.
    py_procs.py [roundtrips=500] [map1=5000] [map1000=200000]
"""
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def empty(_=None):
    return None


def report(metric, value, unit):
    print(f"python {metric} {value:.3f} {unit}", flush=True)


def warm(ex):
    for f in [ex.submit(empty) for _ in range(2)]:
        f.result()


def main():
    args = [int(a) for a in sys.argv[1:]] + [500, 5000, 200000][len(sys.argv) - 1:]
    rt, n1, n1000 = args[:3]
    with ProcessPoolExecutor(max_workers=2) as ex:
        warm(ex)
        samples = []
        for _ in range(rt):
            t0 = time.perf_counter()
            ex.submit(empty).result()
            samples.append((time.perf_counter() - t0) * 1e6)
        report("proc_roundtrip_us", statistics.median(samples), "us")
    for n, chunk in ((n1, 1), (n1000, 1000)):
        with ProcessPoolExecutor(max_workers=2) as ex:
            warm(ex)
            t0 = time.perf_counter()
            for _ in ex.map(empty, range(n), chunksize=chunk):
                pass
            report(f"proc_map_chunk{chunk}_ns_per_task",
                   (time.perf_counter() - t0) * 1e9 / n, "ns")


if __name__ == "__main__":
    main()
