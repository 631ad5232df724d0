"""mpi4py.futures' MPIPoolExecutor doing the same work as bench_mpi, under
the same metric names (implementation "mpi4py"): the round trip of an empty
task, map with chunksize 1 and 1000, and the CPU of the idle pool on each
worker rank and on the root.  Run on 1 root + 2 worker ranks:
    mpiexec -n 3 python3 -m mpi4py.futures py_mpi.py \\
        [roundtrips=500] [map1=5000] [map1000=200000] [idle seconds=2]
Fewer tasks than bench_mpi: the figures are per task, so they compare.
"""
import statistics
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor

CPU = time.CLOCK_PROCESS_CPUTIME_ID
# Under `-m mpi4py.futures` the pool's workers are every rank but the root
# (mpi4py 3 has no num_workers).
WORKERS = MPI.COMM_WORLD.Get_size() - 1


def empty(_=None):
    return None


def sample(second):
    """Who ran it and its clocks; naps 50 ms so the other sample lands on
    the other rank, on the far side of the idle period (as bench_cf.h)."""
    if not second:
        time.sleep(0.05)
    s = (MPI.COMM_WORLD.Get_rank(), time.clock_gettime_ns(CPU),
         time.monotonic_ns())
    if second:
        time.sleep(0.05)
    return s


def report(metric, value, unit):
    print(f"mpi4py {metric} {value:.3f} {unit}", flush=True)


def pool():
    ex = MPIPoolExecutor()
    for f in [ex.submit(empty) for _ in range(WORKERS)]:
        f.result()
    return ex


def samples(ex, second):
    fs = [ex.submit(sample, second) for _ in range(WORKERS)]
    return sorted(f.result() for f in fs)


def idle_cpu(seconds):
    with pool() as ex:
        a = samples(ex, False)
        c0, m0 = time.clock_gettime_ns(CPU), time.monotonic_ns()
        time.sleep(seconds)
        c1, m1 = time.clock_gettime_ns(CPU), time.monotonic_ns()
        b = samples(ex, True)
    if len({s[0] for s in a}) != len(a) or [s[0] for s in a] != [s[0] for s in b]:
        sys.exit("py_mpi.py: the idle samples did not come from every rank")
    for i, (x, y) in enumerate(zip(a, b)):
        report(f"proc_idle_cpu_worker{i + 1}_pct",
               100 * (y[1] - x[1]) / (y[2] - x[2]), "%")
    report("proc_idle_cpu_root_pct", 100 * (c1 - c0) / (m1 - m0), "%")


def main():
    defaults = [500, 5000, 200000, 2]
    args = [float(a) for a in sys.argv[1:]] + defaults[len(sys.argv) - 1:]
    rt, n1, n1000 = (int(a) for a in args[:3])
    if MPI.COMM_WORLD.Get_size() != 3:
        print(f"py_mpi.py: {MPI.COMM_WORLD.Get_size()} ranks: the process "
              "pool's figures are for 2 workers (mpiexec -n 3)", file=sys.stderr)
    with pool() as ex:
        samples_us = []
        for _ in range(rt):
            t0 = time.perf_counter()
            ex.submit(empty).result()
            samples_us.append((time.perf_counter() - t0) * 1e6)
        report("proc_roundtrip_us", statistics.median(samples_us), "us")
    for n, chunk in ((n1, 1), (n1000, 1000)):
        with pool() as ex:
            t0 = time.perf_counter()
            for _ in ex.map(empty, range(n), chunksize=chunk):
                pass
            report(f"proc_map_chunk{chunk}_ns_per_task",
                   (time.perf_counter() - t0) * 1e9 / n, "ns")
    if args[3] > 0:
        idle_cpu(args[3])


if __name__ == "__main__":
    main()
