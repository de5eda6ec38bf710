"""Models exported by Debian's python3-torch (torch.onnx.export with dynamic_axes) for the
ONNX tests: an MLP, a one-layer BERT-style encoder, a LLaMA-style block and a ResNet-18
(torchvision's layout: a 7x7 stem, max pool, four stages of two basic blocks, global
average pool, a linear head) on 64x64 images. Each entry
gives the torch module (the oracle), the input names with their dynamic dims, and a
function making inputs for given symbol values."""

import math

import numpy as np
import torch

OPSET = 17


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(32, 96)
        self.l2 = torch.nn.Linear(96, 96)
        self.l3 = torch.nn.Linear(96, 16)

    def forward(self, x):
        h = torch.relu(self.l1(x))
        h = torch.tanh(self.l2(h))
        return torch.softmax(self.l3(h), dim=-1)


class Encoder(torch.nn.Module):
    """One BERT-style layer: self-attention, add & layernorm, GELU feed-forward."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.TransformerEncoderLayer(
            d_model=64, nhead=4, dim_feedforward=128, dropout=0.1, activation="gelu",
            batch_first=True)

    def forward(self, x):
        return self.layer(x)


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Llama(torch.nn.Module):
    """A LLaMA-style block: RMSNorm, causal attention with rotary embeddings, SiLU-gated MLP."""

    def __init__(self, d=64, heads=4, ff=160):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)
        self.q = torch.nn.Linear(d, d, bias=False)
        self.k = torch.nn.Linear(d, d, bias=False)
        self.v = torch.nn.Linear(d, d, bias=False)
        self.o = torch.nn.Linear(d, d, bias=False)
        self.gate = torch.nn.Linear(d, ff, bias=False)
        self.up = torch.nn.Linear(d, ff, bias=False)
        self.down = torch.nn.Linear(ff, d, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        self.register_buffer("inv_freq", inv)

    def rope(self, x, cos, sin):
        x1, x2 = x[..., : self.hd // 2], x[..., self.hd // 2:]
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    def forward(self, x):
        b, s, d = x.shape
        t = torch.arange(s, dtype=torch.float32)
        f = t[:, None] * self.inv_freq[None, :]
        emb = torch.cat((f, f), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        h = self.n1(x)
        q = self.q(h).view(b, s, self.h, self.hd).transpose(1, 2)
        k = self.k(h).view(b, s, self.h, self.hd).transpose(1, 2)
        v = self.v(h).view(b, s, self.h, self.hd).transpose(1, 2)
        q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
        a = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        i = torch.arange(s)
        mask = torch.zeros(s, s).masked_fill(i[None, :] > i[:, None], float("-inf"))
        a = torch.softmax(a + mask, dim=-1)
        y = (a @ v).transpose(1, 2).reshape(b, s, d)
        x = x + self.o(y)
        h = self.n2(x)
        return x + self.down(torch.nn.functional.silu(self.gate(h)) * self.up(h))


class Block(torch.nn.Module):
    """ResNet's basic block: two 3x3 convs with batch norm, a 1x1 projection when the
    shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = torch.nn.BatchNorm2d(cout)
        self.c2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = torch.nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            torch.nn.BatchNorm2d(cout))

    def forward(self, x):
        h = torch.relu(self.b1(self.c1(x)))
        h = self.b2(self.c2(h))
        return torch.relu(h + (x if self.down is None else self.down(x)))


class ResNet18(torch.nn.Module):
    def __init__(self, classes=100):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False),
                                        torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
                                        torch.nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        self.layers = torch.nn.Sequential(*layers)
        self.fc = torch.nn.Linear(512, classes)

    def forward(self, x):
        h = self.layers(self.stem(x))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(h, 1), 1))


IMAGE = 64


def build(name):
    """-> (module in eval mode, dummy input, dynamic axes of x)."""
    torch.manual_seed({"mlp": 1, "encoder": 2, "llama": 3, "resnet": 4}[name])
    if name == "mlp":
        m, x, axes = MLP(), torch.randn(3, 32), {0: "N"}
    elif name == "encoder":
        m, x, axes = Encoder(), torch.randn(2, 5, 64), {0: "N", 1: "S"}
    elif name == "resnet":
        m, x, axes = ResNet18(), torch.randn(2, 3, IMAGE, IMAGE), {0: "N"}
    else:
        m, x, axes = Llama(), torch.randn(2, 5, 64), {0: "N", 1: "S"}
    with torch.no_grad():  # weights away from init values so every path matters
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for b in m.buffers():  # batch norm statistics too
            if b.dtype == torch.float32:
                b.add_(0.1 * torch.rand_like(b))
    return m.eval(), x, axes


def export(name, path):
    m, x, axes = build(name)
    torch.onnx.export(m, (x,), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": axes, "y": axes}, opset_version=OPSET)
    return m


def reference(m, x):
    with torch.no_grad():
        return m(torch.from_numpy(x)).numpy()


def inputs(name, rng, n, s=None):
    shape = (n, 32) if name == "mlp" else (n, 3, IMAGE, IMAGE) if name == "resnet" else (n, s, 64)
    return rng.standard_normal(shape).astype(np.float32)
