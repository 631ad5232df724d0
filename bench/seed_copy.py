"""The seed's parallel copy (ThreadPoolExecutor(max_workers=4) + shutil.copy),
made runnable: python3 seed_copy.py SRC DST"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from shutil import copy

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
with ThreadPoolExecutor(max_workers=4) as e:
    for f in os.listdir(src):
        s = os.path.join(src, f)
        if os.path.isfile(s):
            e.submit(copy, s, os.path.join(dst, f))
