#!/usr/bin/python3
"""dnnl_layers.py: per-layer oneDNN times of one training step, from a
ONEDNN_VERBOSE=1 log of bench_train_cpu (ours) or torch_step.py (PyTorch):
the convolutions grouped by shape and direction, the reorders apart. Reads
the last step's lines only (the log's text between the last two "step"
lines, or after the last one). Not a test.
Usage: ONEDNN_VERBOSE=1 build/bench/bench_train_cpu --steps 2 | bench/train_cpu/dnnl_layers.py
       ONEDNN_VERBOSE=1 python3 bench/train_cpu/torch_step.py --steps 2 | bench/train_cpu/dnnl_layers.py"""
import re
import sys
from collections import defaultdict

lines = sys.stdin.read().splitlines()
steps = [i for i, l in enumerate(lines) if re.search(r"\bstep \d+:", l)]
if len(steps) < 2:
    sys.exit("need a log of at least two steps (--steps 2)")
body = lines[steps[-2] + 1:steps[-1]]  # the last step's primitives print before its "step" line
conv = defaultdict(float)
other = defaultdict(float)
count = defaultdict(int)
for l in body:
    f = l.split(",")
    if len(f) < 5 or f[1] != "exec":
        continue
    kind, impl, prop, ms = f[3], f[4], f[5], float(f[-1])
    if kind == "convolution":
        m = re.search(r"mb\d+_ic(\d+)oc(\d+)_id(\d+)od\d+kd(\d+)sd(\d+)\S*?_ih(\d+)oh\d+kh(\d+)sh(\d+)", l)
        key = f"c{m[1]}->{m[2]} {m[3]}x{m[6]}^2 k{m[4]}x{m[7]} s{m[5]}x{m[8]}" if m else "?"
        conv[(key, prop)] += ms
        count[(key, prop)] += 1
        other[f"conv {prop}"] += ms
        other[f"  impl {impl} {prop}"] += ms
    else:
        other[kind] += ms
shapes = sorted({k for k, _ in conv}, key=lambda k: -sum(v for (s, _), v in conv.items() if s == k))
props = ["forward_training", "backward_data", "backward_weights"]
print(f"{'conv (calls per step)':28}" + "".join(f"{p:>18}" for p in props) + f"{'sum ms':>10}")
for s in shapes:
    n = max(count[(s, p)] for p in props)
    row = [conv.get((s, p), 0.0) for p in props]
    print(f"{s + f' (x{n})':28}" + "".join(f"{v:18.1f}" for v in row) + f"{sum(row):10.1f}")
print()
for k in sorted(other, key=lambda k: (not k.startswith("conv"), k)):
    print(f"{k:48} {other[k]:9.1f} ms")
print(f"{'oneDNN total':48} {sum(v for k, v in other.items() if not k.startswith('  ')):9.1f} ms")
