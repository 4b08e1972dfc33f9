#!/usr/bin/env python3
"""bench_torch_r3d18.py: the PyTorch baseline of bench_cuda_train: training
throughput of torchvision's r3d_18 (7 classes; an identical definition when
torchvision is missing) at batch 24, 3 x 16 x 112 x 112, with SGD (lr 1e-3,
momentum 0.9, weight decay 5e-4) and cross entropy, in PyTorch's best
configuration: cudnn.benchmark = True, both memory formats
(channels_last_3d and contiguous) measured, the fused SGD where available.
Precisions as bench_cuda_train's: fp32 (TF32 off for cuDNN and matmul),
tf32 (on), bf16 (torch.autocast, loss in fp32). The input batch is already
on the device and normalised (our backend uploads uint8 and normalises each
step, so the comparison favours PyTorch slightly).

Warm-up steps, then rounds of timed steps ended by torch.cuda.synchronize;
the median round gives clips/s. Memory: torch.cuda.max_memory_allocated over
the timed steps, memory_reserved, and the growth of the device's used memory
(torch.cuda.mem_get_info) from before the model, the same measure
bench_cuda_train reports. One JSON object per configuration on stdout.

On a machine without a GPU, --device cpu --tiny runs the same code on a tiny
input (checks the script, measures nothing of interest)."""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):  # torchvision's BasicBlock with Conv3DSimple
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(nn.Conv3d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        r = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        out += r
        return self.relu(out)


class R3D18(nn.Module):  # torchvision.models.video.r3d_18 layer for layer
    def __init__(self, k):
        super().__init__()
        c = [64, 128, 256, 512]
        self.stem = nn.Sequential(nn.Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                                  nn.BatchNorm3d(64), nn.ReLU(inplace=True))
        cin, layers = 64, []
        for i in range(4):
            s = 1 if i == 0 else 2
            layers.append(nn.Sequential(Block(cin, c[i], s), Block(c[i], c[i], 1)))
            cin = c[i]
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512, k)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def make_model(k):
    try:
        from torchvision.models.video import r3d_18
        return r3d_18(num_classes=k), "torchvision r3d_18"
    except ImportError:
        return R3D18(k), "r3d_18 (own definition, torchvision missing)"


def make_sgd(params):
    for kw in ({"fused": True}, {"foreach": True}, {}):
        try:
            return torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4, **kw), next(iter(kw), "default")
        except (TypeError, RuntimeError, ValueError):
            continue
    raise RuntimeError("no SGD")


def bench(args, precision, mem_format):
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.manual_seed(0)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        free0, total = torch.cuda.mem_get_info()
    model, model_name = make_model(7)
    model = model.to(dev, memory_format=mem_format)
    opt, sgd_kind = make_sgd(model.parameters())
    n, t, s = args.batch, args.frames, args.size
    x = torch.randn(n, 3, t, s, s, device=dev).contiguous(memory_format=mem_format)
    y = torch.arange(n, device=dev) % 7
    amp = precision == "bf16"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if cuda:
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        loss = step()
    sync()
    warm = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rates = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        sync()
        rates.append(args.steps * n / (time.perf_counter() - t0))
    res = {"impl": "pytorch", "precision": precision,
           "memory_format": "channels_last_3d" if mem_format == torch.channels_last_3d else "contiguous",
           "device": torch.cuda.get_device_name(dev) if cuda else "cpu", "batch": n,
           "clips_per_s": statistics.median(rates), "clips_per_s_min": min(rates), "clips_per_s_max": max(rates),
           "rounds": args.rounds, "steps": args.steps, "loss": float(loss), "warmup_s": warm,
           "torch": torch.__version__, "model": model_name, "sgd": sgd_kind,
           "cudnn": torch.backends.cudnn.version() if cuda else None}
    if cuda:
        free1, _ = torch.cuda.mem_get_info()
        res["mem_peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
        res["mem_reserved_bytes"] = torch.cuda.memory_reserved()
        res["mem_used_delta_bytes"] = max(0, free0 - free1)
    del model, opt, x, y
    if cuda:
        torch.cuda.empty_cache()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precisions", default="fp32,tf32,bf16")
    ap.add_argument("--formats", default="channels_last_3d,contiguous")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="batch 2, 4 x 32 x 32, 1 warm-up, 2 steps (script check)")
    args = ap.parse_args()
    if args.tiny:
        args.batch, args.frames, args.size, args.warmup, args.steps, args.rounds = 2, 4, 32, 1, 2, 1
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("skipped: no CUDA device for PyTorch", file=sys.stderr)
        return 77
    formats = {"channels_last_3d": torch.channels_last_3d, "contiguous": torch.contiguous_format}
    failed = 0
    for p in args.precisions.split(","):
        for f in args.formats.split(","):
            try:
                r = bench(args, p, formats[f])
            except Exception as e:  # one failing configuration must not stop the others
                r = {"impl": "pytorch", "precision": p, "memory_format": f, "error": repr(e)[:300]}
                failed += 1
            print(json.dumps(r), flush=True)
            if "error" not in r:
                print("pytorch   %-5s %-16s: %.1f clips/s (min %.1f max %.1f), loss %.4f, peak allocated %.2f GiB, "
                      "device used +%.2f GiB" % (p, r["memory_format"], r["clips_per_s"], r["clips_per_s_min"],
                                                 r["clips_per_s_max"], r["loss"],
                                                 r.get("mem_peak_allocated_bytes", 0) / 2**30,
                                                 r.get("mem_used_delta_bytes", 0) / 2**30), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
