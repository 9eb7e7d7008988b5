#!/usr/bin/env python3
"""Independent PyTorch implementations of the baseline MIL models of models/mil/baselines.h
(ABMIL, gated ABMIL, mean pooling, max pooling, TransMIL), with the same parameter names, so
a state_dict written by the C++ models loads here strictly. The tests compare the C++ logits
and parameter gradients against this file.

TransMIL follows the authors' code (github.com/szc19990412/TransMIL, models/TransMIL.py) with
the simplifications stated in models/mil/baselines.h: exact softmax multi-head self-attention
(parameter names of the Nystrom module: attn.to_qkv, no bias, and attn.to_out.0) instead of
Nystrom attention, no dropout, cls_token of shape (1, L). PPEG uses real torch.nn.Conv2d
depthwise convolutions (the C++ code builds them from shifted slices).

Subcommands
  names  --model M --dim D --classes C        print the state_dict names and shapes
  dump   --model M --weights W.safetensors --features X.safetensors|X.bin [--dim D]
         --label L --out OUT.safetensors [--heads 8] [--dtype float32|float64]
         Loads the weights (strictly), reads the bag (safetensors: tensor "x" (N, D);
         .bin: raw little-endian float32, N*D values, --dim required), computes the logits
         (C) and the cross-entropy loss against L, back-propagates, and writes
         logits, loss and grad.<name> for every parameter, plus the per-patch scores of
         models/mil/patch_scores.h as scores.<name> (N): ABMIL and gated ABMIL "attention" (the
         pooling weights), TransMIL "attention" and "attention_layer1" (the class token's
         attention row in layer 2 / layer 1, mean over heads, without the class token's own
         entry, each padding token's entry added to the instance it copies).
  batch  JOBS.txt [--heads 8] [--dtype float32|float64]
         Runs dump for every line "model weights features label out" of JOBS.txt (one
         interpreter start for many cases; features as safetensors).
Model names: abmil, gated_abmil, meanpool, maxpool, transmil. Widths are read from the
weight shapes (hidden L, attention A, classes C); --heads is needed for TransMIL.
"""
import argparse
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class ABMIL(nn.Module):
    def __init__(self, D, C, L=256, A=128):
        super().__init__()
        self.feature = nn.Sequential(nn.Linear(D, L), nn.ReLU())
        self.attention = nn.Sequential(nn.Linear(L, A), nn.Tanh(), nn.Linear(A, 1))
        self.classifier = nn.Linear(L, C)

    def forward(self, x):
        H = self.feature(x)                          # (N, L)
        A = torch.transpose(self.attention(H), 1, 0)  # (1, N)
        A = F.softmax(A, dim=1)
        self.scores = {"attention": A[0].detach()}
        Z = torch.mm(A, H)                           # (1, L)
        return self.classifier(Z)[0]


class GatedABMIL(nn.Module):
    def __init__(self, D, C, L=256, A=128):
        super().__init__()
        self.feature = nn.Sequential(nn.Linear(D, L), nn.ReLU())
        self.attention_V = nn.Sequential(nn.Linear(L, A), nn.Tanh())
        self.attention_U = nn.Sequential(nn.Linear(L, A), nn.Sigmoid())
        self.attention_w = nn.Linear(A, 1)
        self.classifier = nn.Linear(L, C)

    def forward(self, x):
        H = self.feature(x)
        A = self.attention_w(self.attention_V(H) * self.attention_U(H))  # (N, 1)
        A = F.softmax(torch.transpose(A, 1, 0), dim=1)
        self.scores = {"attention": A[0].detach()}
        return self.classifier(torch.mm(A, H))[0]


class MeanPoolMIL(nn.Module):
    def __init__(self, D, C, L=256):
        super().__init__()
        self.feature = nn.Sequential(nn.Linear(D, L), nn.ReLU())
        self.classifier = nn.Linear(L, C)

    def forward(self, x):
        return self.classifier(self.feature(x).mean(dim=0))


class MaxPoolMIL(nn.Module):
    def __init__(self, D, C, L=256):
        super().__init__()
        self.feature = nn.Sequential(nn.Linear(D, L), nn.ReLU())
        self.classifier = nn.Linear(L, C)

    def forward(self, x):
        return self.classifier(torch.amax(self.feature(x), dim=0))


class ExactAttention(nn.Module):
    """Softmax multi-head self-attention with NystromAttention's parameter layout."""

    def __init__(self, dim, heads=8):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim))

    def forward(self, x):  # (B, n, dim)
        b, n, _ = x.shape
        h = self.heads
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, n, h, -1).transpose(1, 2) for t in (q, k, v))  # (b, h, n, d)
        q = q * self.scale
        attn = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        self.last_attn = attn.detach()                  # (b, h, n, n)
        out = (attn @ v).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class TransLayer(nn.Module):
    def __init__(self, dim=512, heads=8):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = ExactAttention(dim, heads)

    def forward(self, x):
        return x + self.attn(self.norm(x))


class PPEG(nn.Module):
    def __init__(self, dim=512):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 7, 1, 7 // 2, groups=dim)
        self.proj1 = nn.Conv2d(dim, dim, 5, 1, 5 // 2, groups=dim)
        self.proj2 = nn.Conv2d(dim, dim, 3, 1, 3 // 2, groups=dim)

    def forward(self, x, H, W):
        B, _, C = x.shape
        cls_token, feat_token = x[:, 0], x[:, 1:]
        cnn_feat = feat_token.transpose(1, 2).reshape(B, C, H, W)
        x = self.proj(cnn_feat) + cnn_feat + self.proj1(cnn_feat) + self.proj2(cnn_feat)
        x = x.flatten(2).transpose(1, 2)
        return torch.cat((cls_token.unsqueeze(1), x), dim=1)


class TransMIL(nn.Module):
    def __init__(self, D, C, L=512, heads=8):
        super().__init__()
        self.pos_layer = PPEG(dim=L)
        self._fc1 = nn.Sequential(nn.Linear(D, L), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, L))
        self.layer1 = TransLayer(dim=L, heads=heads)
        self.layer2 = TransLayer(dim=L, heads=heads)
        self.norm = nn.LayerNorm(L)
        self._fc2 = nn.Linear(L, C)

    def forward(self, x):
        h = self._fc1(x.unsqueeze(0))  # (1, n, L)
        n = h.shape[1]
        side = math.isqrt(n - 1) + 1 if n > 0 else 0  # ceil(sqrt(n))
        add_length = side * side - n
        h = torch.cat([h, h[:, :add_length, :]], dim=1)
        h = torch.cat((self.cls_token.unsqueeze(0), h), dim=1)
        h = self.layer1(h)
        h = self.pos_layer(h, side, side)
        h = self.layer2(h)
        # Class token's attention row, mean over heads, folded onto the n instances: token
        # 1 + t (t < side^2) is instance t mod n (the padding repeats the first instances).
        def fold(attn):
            row = attn[0, :, 0, 1:].mean(0).double()  # (side^2)
            return torch.zeros(n, dtype=torch.float64).index_add_(0, torch.arange(side * side) % n, row).float()
        self.scores = {"attention": fold(self.layer2.attn.last_attn), "attention_layer1": fold(self.layer1.attn.last_attn)}
        h = self.norm(h)[:, 0]
        return self._fc2(h)[0]


MODELS = ["abmil", "gated_abmil", "meanpool", "maxpool", "transmil"]


def build(name, D, C, L=None, A=None, heads=8):
    if name == "abmil":
        return ABMIL(D, C, L or 256, A or 128)
    if name == "gated_abmil":
        return GatedABMIL(D, C, L or 256, A or 128)
    if name == "meanpool":
        return MeanPoolMIL(D, C, L or 256)
    if name == "maxpool":
        return MaxPoolMIL(D, C, L or 256)
    if name == "transmil":
        return TransMIL(D, C, L or 512, heads)
    raise SystemExit(f"unknown model {name!r} (valid: {', '.join(MODELS)})")


def build_from_state(name, sd, heads):
    """Builds the model with the widths the weights imply."""
    if name == "transmil":
        L, D = sd["_fc1.0.weight"].shape
        C = sd["_fc2.weight"].shape[0]
        return build(name, D, C, L, heads=heads)
    L, D = sd["feature.0.weight"].shape
    C = sd["classifier.weight"].shape[0]
    A = None
    if name == "abmil":
        A = sd["attention.0.weight"].shape[0]
    elif name == "gated_abmil":
        A = sd["attention_V.0.weight"].shape[0]
    return build(name, D, C, L, A)


def read_features(path, dim):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)["x"]
    import numpy as np
    if not dim:
        raise SystemExit("--dim is required for raw .bin features")
    a = np.fromfile(path, dtype="<f4")
    if a.size % dim:
        raise SystemExit(f"{path}: {a.size} values are not a multiple of D={dim}")
    return torch.from_numpy(a.reshape(-1, dim).copy())


def cmd_names(args):
    m = build(args.model, args.dim, args.classes, heads=args.heads)
    for k, v in m.state_dict().items():
        print(k, list(v.shape))


def dump(model_name, weights, features, label, out_path, heads=8, dtype="float32", dim=0):
    from safetensors.torch import load_file, save_file
    dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    sd = load_file(weights)
    model = build_from_state(model_name, sd, heads)
    model.load_state_dict(sd, strict=True)
    model = model.to(dt)
    x = read_features(features, dim).to(dt)
    logits = model(x)
    loss = F.cross_entropy(logits.unsqueeze(0), torch.tensor([label]))
    loss.backward()
    out = {"logits": logits.detach().contiguous(), "loss": loss.detach().reshape(())}
    for name, p in model.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        out["grad." + name] = g.detach().contiguous()
    for name, v in getattr(model, "scores", {}).items():
        out["scores." + name] = v.to(dt).contiguous()
    save_file(out, out_path)


def cmd_dump(args):
    dump(args.model, args.weights, args.features, args.label, args.out, args.heads, args.dtype, args.dim)


def cmd_batch(args):
    with open(args.jobs) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                raise SystemExit(f"{args.jobs}: bad job line {line!r}")
            model_name, weights, features, label, out = parts
            dump(model_name, weights, features, int(label), out, args.heads, args.dtype)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    n = sub.add_parser("names")
    n.add_argument("--model", required=True, choices=MODELS)
    n.add_argument("--dim", type=int, required=True)
    n.add_argument("--classes", type=int, required=True)
    n.add_argument("--heads", type=int, default=8)
    d = sub.add_parser("dump")
    d.add_argument("--model", required=True, choices=MODELS)
    d.add_argument("--weights", required=True)
    d.add_argument("--features", required=True)
    d.add_argument("--dim", type=int, default=0)
    d.add_argument("--label", type=int, required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--heads", type=int, default=8)
    d.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    b = sub.add_parser("batch")
    b.add_argument("jobs")
    b.add_argument("--heads", type=int, default=8)
    b.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    {"names": cmd_names, "dump": cmd_dump, "batch": cmd_batch}[args.cmd](args)


if __name__ == "__main__":
    main(sys.argv[1:])
