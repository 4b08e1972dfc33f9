#!/usr/bin/python3
"""torch_step.py: the PyTorch side of the CPU training benchmark: one
training step (forward, CE loss, backward, SGD with momentum) of the full 3D
ResNet-18 (the same module as workers/train/ref/make_reference.py, i.e.
torchvision's r3d_18 layer shapes) at batch B, 3 x 16 x 112 x 112, float32,
repeated; prints each step's seconds, the median and the peak RSS. Run it
through run.sh, which sets the allocator and BLAS. Not a test.
Usage: torch_step.py [--batch 4] [--steps 5] [--threads 2] [--arch r3d18|c3d]"""
import argparse
import ctypes
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../workers/train/ref"))
import make_reference as R  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--arch", default="r3d18")
a = ap.parse_args()
torch.set_default_dtype(torch.float32)
torch.set_num_threads(a.threads)
torch.manual_seed(0)
m = R.R3D18(1.0, 7) if a.arch == "r3d18" else R.C3D(1.0, 7, 16, 112, 112, 0.5)
m.train()
opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
x = torch.randn(a.batch, 3, 16, 112, 112)
y = torch.arange(a.batch) % 7
# Debian's PyTorch runs its convolutions on the system's libdnnl (the one the
# CPU backend uses): the instruction set it dispatches to, from the library
# loaded in this process (ONEDNN_MAX_CPU_ISA caps both alike)
ISA_NAMES = {0x1: "sse41", 0x3: "avx", 0x7: "avx2", 0x407: "avx2_vnni", 0x27: "avx512_core",
             0x67: "avx512_core_vnni", 0xe7: "avx512_core_bf16", 0x3e7: "avx512_core_amx"}
try:
    isa = ctypes.CDLL("libdnnl.so.2").dnnl_get_effective_cpu_isa()
    isa = ISA_NAMES.get(isa, hex(isa))
except OSError:
    isa = "unknown"
print(f"torch {torch.__version__}: {a.arch}, {sum(p.numel() for p in m.parameters())} parameters, batch {a.batch}, "
      f"{torch.get_num_threads()} threads, mkldnn {torch.backends.mkldnn.is_available()}, oneDNN isa {isa}, "
      f"LD_PRELOAD={os.environ.get('LD_PRELOAD', '')}", flush=True)
ts = []
for i in range(a.steps):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(m(x)[0], y)
    loss.backward()
    opt.step()
    ts.append(time.perf_counter() - t0)
    print(f"torch step {i}: {ts[-1]:.3f} s (loss {loss.item():.4f})", flush=True)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torch median {statistics.median(ts):.3f} s, peak RSS {rss:.0f} MB")
