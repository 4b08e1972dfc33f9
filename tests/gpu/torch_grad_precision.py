#!/usr/bin/env python3
"""GPU test helper: how far PyTorch's own TF32 and bf16 (autocast) gradients
are from its fp32 gradients, for torchvision's r3d_18 (7 classes, train mode,
cross entropy) on one random batch. test_cuda_train compares the CUDA
backend's drift against these numbers instead of a guessed bound. Prints one
JSON line: {"tf32": NMSE, "bf16": NMSE, ...}. Needs a GPU and torchvision."""
import argparse
import copy
import json

import torch
import torch.nn.functional as F


def grads(model, x, y, precision):
    torch.backends.cudnn.allow_tf32 = precision == 'tf32'
    torch.backends.cuda.matmul.allow_tf32 = precision == 'tf32'
    m = copy.deepcopy(model)
    m.zero_grad(set_to_none=True)
    if precision == 'bf16':
        with torch.autocast('cuda', dtype=torch.bfloat16):
            out = m(x)
        loss = F.cross_entropy(out.float(), y)
    else:
        loss = F.cross_entropy(m(x), y)
    loss.backward()
    return torch.cat([p.grad.detach().float().flatten() for p in m.parameters()]), float(loss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--frames', type=int, default=16)
    ap.add_argument('--size', type=int, default=112)
    args = ap.parse_args()
    from torchvision.models.video import r3d_18
    torch.manual_seed(0)
    model = r3d_18(num_classes=7).cuda().train()
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size, device='cuda')
    y = torch.randint(0, 7, (args.batch,), device='cuda')
    ref, lref = grads(model, x, y, 'fp32')
    out = {'batch': args.batch, 'loss_fp32': lref}
    for p in ('tf32', 'bf16'):
        g, l = grads(model, x, y, p)
        out[p] = float(((g - ref) ** 2).sum() / (ref ** 2).sum())
        out['loss_' + p] = l
    print(json.dumps(out))


if __name__ == '__main__':
    main()
