"""The seed's three blocking ways to send 20 GET requests (its "异步进化"
section: one after the other, a ProcessPoolExecutor, a ThreadPoolExecutor),
made runnable against any URL and in Python 3:

    python3 seed_fetch.py serial|processes|threads WORKERS URL...

Each request is the seed's blocking_request(), with urllib instead of a
hand-made socket (one GET, the whole body read).  Prints the seed's line,
"Request Times: N, Total Cost: S seconds"; exits 1 if a request failed."""
import sys
import time
import urllib.request
from concurrent import futures


def blocking_request(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return len(r.read())


def main():
    mode, workers, urls = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    start = time.time()
    if mode == "serial":
        results = [blocking_request(u) for u in urls]
    else:
        pool = (futures.ProcessPoolExecutor if mode == "processes"
                else futures.ThreadPoolExecutor)
        with pool(max_workers=workers) as executor:
            fs = [executor.submit(blocking_request, u) for u in urls]
            results = [f.result() for f in fs]
    print("Request Times: {0}, Total Cost: {1} seconds".format(
        len(results), time.time() - start))
    return 0 if len(results) == len(urls) else 1


if __name__ == "__main__":
    sys.exit(main())
