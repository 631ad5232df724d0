"""Makes the trees bench/samples.sh copies, under DIR (seeded: the same
sizes every run):
  flat   2,000 files of 64 KiB in one folder
  tree   40 folders x 500 files of 4 KiB
  mixed  50,000 files, 100 folders two levels deep, sizes from 0 to 16 KB
  large  8 files of 64 MiB"""
import os
import random
import sys

top = sys.argv[1]
rnd = random.Random(1)
data = os.urandom(1 << 20)
big = os.urandom(64 << 20)


def put(path, n):
    with open(path, "wb") as f:
        f.write(data[:n])


os.makedirs(f"{top}/flat")
for i in range(2000):
    put(f"{top}/flat/f{i}", 65536)
for d in range(40):
    os.makedirs(f"{top}/tree/d{d}")
    for i in range(500):
        put(f"{top}/tree/d{d}/f{i}", 4096)
for a in range(10):
    for b in range(10):
        p = f"{top}/mixed/a{a}/b{b}"
        os.makedirs(p)
        for i in range(500):
            put(f"{p}/f{i}", rnd.choice([0, 100, 1000, 3000, 4096, 8000, 16000]))
os.makedirs(f"{top}/large")
for i in range(8):
    with open(f"{top}/large/f{i}", "wb") as f:
        f.write(big)
