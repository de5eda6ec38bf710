"""Models exported by Debian's python3-torch (torch.onnx.export with dynamic_axes) for the
ONNX tests: an MLP, a one-layer BERT-style encoder, a LLaMA-style block and a ResNet-18
(torchvision's layout: a 7x7 stem, max pool, four stages of two basic blocks, global
average pool, a linear head) on 64x64 images; also a GPT-style decoder step with a KV
cache (export_gpt) and a 12-layer BERT-base-size encoder with an attention mask
(export_bert). Each entry
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


class GPTLayer(torch.nn.Module):
    """A GPT-2-style block over the new tokens x, attending to the cached keys and values
    of the P earlier positions and to the new ones (causally)."""

    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv, self.o = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.f1, self.f2 = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)

    def forward(self, x, pk, pv):
        n, t, d = x.shape
        h, p = self.h, pk.shape[2]
        q, k, v = self.qkv(self.ln1(x)).split(d, -1)
        q, k, v = (z.view(n, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        i = torch.arange(t).unsqueeze(1) + p
        j = torch.arange(p + t).unsqueeze(0)
        s = s.masked_fill(j > i, float("-inf"))
        a = torch.softmax(s, -1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(n, t, d))
        return x + self.f2(torch.nn.functional.gelu(self.f1(self.ln2(x)))), k, v


class GPT(torch.nn.Module):
    """A decoder step with a KV cache: token ids (N, T) and the past keys and values
    (layers, N, heads, P, head dim) give the logits and the caches grown to P + T; the
    positions P .. P + T - 1 are computed inside (Range from the cache's length)."""
    LAYERS, HEADS, DIM, VOCAB = 2, 4, 64, 512

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(self.VOCAB, self.DIM)
        self.pos = torch.nn.Embedding(256, self.DIM)
        self.layers = torch.nn.ModuleList([GPTLayer(self.DIM, self.HEADS) for _ in range(self.LAYERS)])
        self.lnf, self.head = torch.nn.LayerNorm(self.DIM), torch.nn.Linear(self.DIM, self.VOCAB)

    def forward(self, ids, past_k, past_v):
        p = past_k.shape[3]
        pos = torch.arange(p, p + ids.shape[1]).unsqueeze(0)
        x = self.emb(ids) + self.pos(pos)
        ks, vs = [], []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, past_k[i], past_v[i])
            ks.append(k)
            vs.append(v)
        return self.head(self.lnf(x)), torch.stack(ks), torch.stack(vs)


def export_gpt(path):
    """The decoder step exported with N, T and P dynamic; returns the torch module."""
    torch.manual_seed(5)
    m = GPT().eval()
    c = (GPT.LAYERS, 1, GPT.HEADS, 3, GPT.DIM // GPT.HEADS)
    cache = {1: "N", 3: "P"}
    torch.onnx.export(m, (torch.tensor([[3, 4]]), torch.zeros(c), torch.zeros(c)), path,
                      input_names=["ids", "past_k", "past_v"],
                      output_names=["logits", "present_k", "present_v"],
                      dynamic_axes={"ids": {0: "N", 1: "T"}, "past_k": cache, "past_v": cache,
                                    "logits": {0: "N", 1: "T"}, "present_k": {1: "N", 3: "PT"},
                                    "present_v": {1: "N", 3: "PT"}}, opset_version=OPSET)
    return m


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


class BertLayer(torch.nn.Module):
    """A post-LN BERT layer: self-attention with an additive mask, add & layernorm, a GELU
    (erf) feed-forward, add & layernorm."""

    def __init__(self, d, h, ff):
        super().__init__()
        self.h, self.hd = h, d // h
        self.q, self.k = torch.nn.Linear(d, d), torch.nn.Linear(d, d)
        self.v, self.o = torch.nn.Linear(d, d), torch.nn.Linear(d, d)
        self.ln1, self.ln2 = torch.nn.LayerNorm(d, eps=1e-12), torch.nn.LayerNorm(d, eps=1e-12)
        self.f1, self.f2 = torch.nn.Linear(d, ff), torch.nn.Linear(ff, d)

    def forward(self, x, bias):
        n, s, d = x.shape
        q, k, v = (z.view(n, s, self.h, self.hd).transpose(1, 2)
                   for z in (self.q(x), self.k(x), self.v(x)))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.hd) + bias, dim=-1)
        x = self.ln1(x + self.o((a @ v).transpose(1, 2).reshape(n, s, d)))
        return self.ln2(x + self.f2(torch.nn.functional.gelu(self.f1(x))))


class Bert(torch.nn.Module):
    """A BERT-base-size encoder (no transformers package): token, learned position (positions
    arange(S) computed inside, so the file has Shape and Range) and one token-type embedding,
    an embedding layernorm, then post-LN layers over an int64 attention mask [N, S] (1 a
    token, 0 padding); the output is the last hidden state [N, S, D]."""
    VOCAB, DIM, HEADS, FF, POSITIONS = 30522, 768, 12, 3072, 512

    def __init__(self, layers=12):
        super().__init__()
        self.emb = torch.nn.Embedding(self.VOCAB, self.DIM)
        self.pos = torch.nn.Embedding(self.POSITIONS, self.DIM)
        self.tok_type = torch.nn.Embedding(1, self.DIM)
        self.ln = torch.nn.LayerNorm(self.DIM, eps=1e-12)
        self.layers = torch.nn.ModuleList([BertLayer(self.DIM, self.HEADS, self.FF)
                                           for _ in range(layers)])

    def forward(self, input_ids, attention_mask):
        pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.emb(input_ids) + self.pos(pos) + self.tok_type(torch.zeros_like(input_ids))
        x = self.ln(x)
        bias = (1 - attention_mask[:, None, None, :]) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return x


def export_bert(path, layers=12):
    """The encoder exported with N and S dynamic (inputs input_ids and attention_mask, int64
    [N, S]; output y [N, S, 768]), weights perturbed as build() does; returns the module."""
    torch.manual_seed(6)
    m = Bert(layers)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    m.eval()
    ids = torch.tensor([[101, 2023, 2003, 102], [101, 7592, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    axes = {0: "N", 1: "S"}
    torch.onnx.export(m, (ids, mask), path, input_names=["input_ids", "attention_mask"],
                      output_names=["y"], dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                                        "y": axes}, opset_version=OPSET)
    return m
