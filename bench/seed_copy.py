"""The seed's parallel copy (ThreadPoolExecutor(max_workers=4) + shutil.copy),
made runnable: python3 seed_copy.py SRC DST.  The article copies one
folder's files; for the benchmark's trees it walks sub-folders too (os.walk),
each file still one shutil.copy submitted to the same pool."""
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from shutil import copy

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
with ThreadPoolExecutor(max_workers=4) as e:
    for root, dirs, files in os.walk(src):
        out = os.path.join(dst, os.path.relpath(root, src))
        os.makedirs(out, exist_ok=True)
        for f in files:
            s = os.path.join(root, f)
            if os.path.isfile(s):
                e.submit(copy, s, os.path.join(out, f))
