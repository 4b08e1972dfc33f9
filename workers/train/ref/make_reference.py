#!/usr/bin/python3
"""make_reference.py: writes the trainer's reference files with PyTorch, the
llm.c way: small configurations of both models (3D ResNet-18 with
torchvision's r3d_18 module names and layer shapes, and C3D) with fixed random
weights and inputs, and what PyTorch computes from them: eval-mode logits, and
for each loss (CE, CE + EC-STFL, CE + EC-STFL-L1, CE + center) the train-mode
logits, the loss parts, every parameter's gradient and the buffers after the
step (batchnorm running statistics, updated centres), and the losses of ten
SGD steps. Computed in float64 (the truth the fp32 C backend is measured
against), stored as float32.

Needs python3-torch (Debian 12: torch 1.13). The generated files are
committed under tests/trainer/ so the test suite needs no PyTorch; rerun this
when a model changes:
    /usr/bin/python3 workers/train/ref/make_reference.py tests/trainer
(Debian's python3, where python3-torch installs; not a pyenv python)
Not a test itself; tests/trainer/test_train_ref.c compares.

File format (little endian): magic b"DFEWREF\\0", uint32 version = 1,
uint32 record count, then records: char name[64] (NUL padded), int64 numel,
float32 data[numel].
"""
import copy
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
MAGIC, VERSION = b"DFEWREF\0", 1
LOSSES = {"ce": (0, 0.0), "ecstfl": (1, 10.0), "ecstfl_l1": (2, 1.0), "center": (3, 1.0)}


def w(base, width):
    return max(1, int(round(base * width)))


class Block(nn.Module):  # torchvision BasicBlock with Conv3DSimple
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv3d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm3d(cout))
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        r = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv2(self.conv1(x)) + r)


class R3D18(nn.Module):
    def __init__(self, width, k):
        super().__init__()
        c = [w(b, width) for b in (64, 128, 256, 512)]
        self.stem = nn.Sequential(nn.Conv3d(3, c[0], (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                                  nn.BatchNorm3d(c[0]), nn.ReLU())
        cin = c[0]
        for i in range(4):
            s = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(Block(cin, c[i], s), Block(c[i], c[i], 1)))
            cin = c[i]
        self.fc = nn.Linear(cin, k)

    def features(self, x):
        x = self.stem(x)
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return x.mean(dim=(2, 3, 4))

    def forward(self, x):
        f = self.features(x)
        return self.fc(f), f


class C3D(nn.Module):
    def __init__(self, width, k, t, h, ww, dropout):
        super().__init__()
        spec = [("conv1", 64, (1, 2, 2), 0), ("conv2", 128, (2, 2, 2), 0), ("conv3a", 256, None, 0),
                ("conv3b", 256, (2, 2, 2), 0), ("conv4a", 512, None, 0), ("conv4b", 512, (2, 2, 2), 0),
                ("conv5a", 512, None, 0), ("conv5b", 512, (2, 2, 2), (0, 1, 1))]
        self.seq, cin = [], 3
        for name, ch, pool, pad in spec:
            setattr(self, name, nn.Conv3d(cin, w(ch, width), 3, 1, 1))
            self.seq.append((name, pool, pad))
            cin = w(ch, width)
        with torch.no_grad():
            flat = self.conv_part(torch.zeros(1, 3, t, h, ww)).shape[1]
        hid = w(4096, width)
        self.fc6, self.fc7, self.fc8 = nn.Linear(flat, hid), nn.Linear(hid, hid), nn.Linear(hid, k)
        self.p = dropout

    def conv_part(self, x):
        for name, pool, pad in self.seq:
            x = F.relu(getattr(self, name)(x))
            if pool:
                x = F.max_pool3d(x, pool, pool, pad)
        return x.flatten(1)

    def forward(self, x):
        x = self.conv_part(x)
        x = F.dropout(F.relu(self.fc6(x)), self.p, self.training)
        f = F.dropout(F.relu(self.fc7(x)), self.p, self.training)
        return self.fc8(f), f


def ecstfl(f, y):
    """Paper eq. (9), L2 distances (see workers/train/cpu/losses.c)."""
    n = f.shape[0]
    cnt = torch.stack([(y == y[i]).sum() for i in range(n)]).to(f.dtype)
    if len(set(y.tolist())) < 2:
        return None
    intra, inter = 0.0, 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d = torch.sqrt(((f[i] - f[j]) ** 2).sum())
            if y[i] == y[j]:
                intra = intra + d / cnt[i]
            else:
                inter = inter + d / cnt[j]
    return intra / inter


def ecstfl_l1(f, y):
    """The authors' later public form: L1 distances, attract x repel, mean."""
    d = torch.cdist(f, f, p=1)
    yy = y.unsqueeze(1)
    pos, neg = (yy == yy.T).to(f.dtype), (yy != yy.T).to(f.dtype)
    attract = (d * pos).sum(1) / (pos.sum(1) - 1 + 1 + 1e-6)
    repel = (1.0 / (d + 1e-6) * neg).sum(1) / (neg.sum(1) + 1 + 1e-6)
    return (attract * repel / f.shape[0]).mean()


def center(f, y, centers):
    return ((f - centers[y]) ** 2).sum() / (2 * f.shape[0])


def center_update(centers, f, y, alpha):
    c = centers.clone()
    for j in range(c.shape[0]):
        m = y == j
        if m.any():
            c[j] -= alpha * (c[j] - f[m]).sum(0) / (1 + m.sum())
    return c


def total_loss(model, x, y, loss, lam, centers):
    logits, f = model(x)
    ce = F.cross_entropy(logits, y)
    aux = None
    if loss == "ecstfl":
        aux = ecstfl(f, y)
    elif loss == "ecstfl_l1":
        aux = ecstfl_l1(f, y)
    elif loss == "center":
        aux = center(f, y, centers)
    tot = ce + lam * aux if aux is not None else ce
    return logits, f, ce, aux, tot


def build(arch, width, k, t, h, ww, seed):
    torch.manual_seed(seed)
    m = R3D18(width, k) if arch == 0 else C3D(width, k, t, h, ww, 0.0)
    with torch.no_grad():  # non-trivial batchnorm parameters and statistics
        if arch == 1:  # C3D has no batchnorm: He init keeps its features apart
            for name, p in m.named_parameters():
                if p.dim() > 1:
                    nn.init.kaiming_normal_(p, nonlinearity="relu")
        for name, p in m.named_parameters():
            if p.dim() == 1 and "bn" not in name and name.endswith(".weight"):
                p.uniform_(0.5, 1.5)
            elif p.dim() == 1:
                p.uniform_(-0.2, 0.2)
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
    return m


def write(path, recs):
    with open(path, "wb") as fh:
        fh.write(MAGIC + struct.pack("<II", VERSION, len(recs)))
        for name, t in recs:
            a = torch.as_tensor(t, dtype=torch.float64).flatten().to(torch.float32).numpy()
            nb = name.encode()
            assert len(nb) < 64, name
            fh.write(nb + b"\0" * (64 - len(nb)) + struct.pack("<q", a.size) + a.tobytes())


def make(path, arch, width, k, t, h, ww, n, labels, seed, lr):
    m0 = build(arch, width, k, t, h, ww, seed)
    torch.manual_seed(seed + 1)
    x = torch.randn(n, 3, t, h, ww)
    y = torch.tensor(labels)
    fdim = m0.fc.in_features if arch == 0 else m0.fc8.in_features
    centers0 = torch.randn(k, fdim) * 0.5
    recs = [("config", [arch, k, t, h, ww, n, width, 0.0]), ("input", x), ("labels", y.double())]
    sd = m0.state_dict()
    recs += [(name, v) for name, v in sd.items() if not name.endswith("num_batches_tracked")]
    recs.append(("center_loss.centers", centers0))
    m0.eval()
    with torch.no_grad():
        recs.append(("eval.logits", m0(x)[0]))
    for loss, (code, lam) in LOSSES.items():
        m = copy.deepcopy(m0)
        m.train()
        logits, f, ce, aux, tot = total_loss(m, x, y, loss, lam, centers0)
        tot.backward()
        recs.append((f"{loss}.config", [code, lam, 0.5]))
        recs.append((f"{loss}.logits", logits.detach()))
        recs.append((f"{loss}.loss", [ce.item(), 0.0 if aux is None else aux.item(), tot.item(),
                                      0.0 if aux is None else 1.0]))
        for name, p in m.named_parameters():
            recs.append((f"{loss}.grad.{name}", p.grad))
        for name, b in m.named_buffers():
            if not name.endswith("num_batches_tracked"):
                recs.append((f"{loss}.after.{name}", b))
        if loss == "center":
            recs.append((f"{loss}.after.center_loss.centers", center_update(centers0, f.detach(), y, 0.5)))
    # ten SGD steps of CE + 10 EC-STFL on the same batch
    m = copy.deepcopy(m0)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    steps = []
    for _ in range(10):
        opt.zero_grad()
        tot = total_loss(m, x, y, "ecstfl", 10.0, None)[4]
        tot.backward()
        opt.step()
        steps.append(tot.item())
    recs.append(("sgd.config", [lr, 0.9, 5e-4, 10.0]))
    recs.append(("sgd.losses", steps))
    write(path, recs)
    nparam = sum(p.numel() for p in m0.parameters())
    print(f"{path}: {len(recs)} records, {nparam} parameters, sgd losses {steps[0]:.4f} -> {steps[-1]:.4f}")


def sklearn_metrics(path):
    """UAR / WAR of random predictions by scikit-learn, the second computation
    the C metrics module is checked against."""
    import numpy as np
    from sklearn.metrics import accuracy_score, recall_score
    rng = np.random.default_rng(7)
    with open(path, "w") as fh:
        fh.write("# cases: n k, truth, pred, uar war, per-class recall (sklearn 1.2, labels = classes in truth)\n")
        for n, k in [(50, 7), (300, 7), (20, 7), (1000, 7), (37, 5)]:
            truth = rng.integers(0, k, n)
            if n == 20:
                truth[truth == 3] = 4  # a class with no support
            pred = np.where(rng.random(n) < 0.4, truth, rng.integers(0, k, n))
            labels = sorted(set(truth.tolist()))
            uar = recall_score(truth, pred, labels=labels, average="macro")
            war = accuracy_score(truth, pred)
            per = recall_score(truth, pred, labels=list(range(k)), average=None, zero_division=0)
            fh.write(f"{n} {k}\n{' '.join(map(str, truth))}\n{' '.join(map(str, pred))}\n")
            fh.write(f"{uar:.9f} {war:.9f}\n{' '.join(f'{r:.9f}' for r in per)}\n")
    print(f"{path}: sklearn UAR/WAR cases")


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/trainer"
    # r3d18 at width 1/32 (2, 4, 8, 16 channels), 3 x 4 x 16 x 16 input, batch 6
    make(f"{out}/ref_r3d18.bin", 0, 1 / 32, 7, 4, 16, 16, 6, [0, 1, 0, 2, 1, 0], 1234, 0.01)
    # C3D at width 1/64, the smallest input it takes (3 x 16 x 16 x 16), batch 5
    make(f"{out}/ref_c3d.bin", 1, 1 / 64, 7, 16, 16, 16, 5, [3, 3, 5, 6, 5], 4321, 0.002)
    sklearn_metrics(f"{out}/metrics_ref.txt")
