#!/usr/bin/env python3
"""Writes a tiny MIL dataset for protocol tests: OUT/features/<slide>.h5 (CLAM layout),
OUT/labels.csv, OUT/split.json (FOLDS folds), OUT/instance_priors.json, OUT/bag_priors.csv,
OUT/z_ins.safetensors and OUT/z_bag.safetensors (random unit embeddings, tensor "embeddings").
Class c's bags carry a few instances shifted along direction c, so the task is learnable.
Usage: make_tiny_dataset.py OUT [--classes 2] [--per-class 6] [--dim 16] [--folds 2] [--seed 0]
"""
import argparse
import json
import os

import h5py
import numpy as np
import torch
from safetensors.torch import save_file

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--classes", type=int, default=2)
p.add_argument("--per-class", type=int, default=6)
p.add_argument("--dim", type=int, default=16)
p.add_argument("--folds", type=int, default=2)
p.add_argument("--kt", type=int, default=5)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
rng = np.random.default_rng(a.seed)
os.makedirs(os.path.join(a.out, "features"), exist_ok=True)
names, labels = [], []
for c in range(a.classes):
    for i in range(a.per_class):
        name = f"slide_c{c}_{i:02d}"
        n = int(rng.integers(5, 40))
        x = rng.normal(size=(n, a.dim)).astype(np.float32)
        k = max(1, n // 4)
        x[:k, c] += 3.0
        with h5py.File(os.path.join(a.out, "features", name + ".h5"), "w") as f:
            f["features"] = x
            f["coords"] = (rng.integers(0, 50, size=(n, 2)) * 512).astype(np.int64)
        names.append(name)
        labels.append(c)
with open(os.path.join(a.out, "labels.csv"), "w") as f:
    f.write("name,label\n")
    for n, l in zip(names, labels):
        f.write(f"{n},{l}\n")
split = {}
for fold in range(a.folds):
    tr, va, te = [], [], []
    for c in range(a.classes):
        idx = [i for i in range(len(names)) if labels[i] == c]
        rng.shuffle(idx)
        tr += [names[i] for i in idx[:2]]
        rest = idx[2:]
        va += [names[i] for i in rest[: len(rest) // 2]]
        te += [names[i] for i in rest[len(rest) // 2:]]
    split[f"train_{fold}"], split[f"val_{fold}"], split[f"test_{fold}"] = tr, va, te
with open(os.path.join(a.out, "split.json"), "w") as f:
    json.dump(split, f)
with open(os.path.join(a.out, "instance_priors.json"), "w") as f:
    json.dump([f"Entity {k}: description {k}." for k in range(a.kt)], f)
with open(os.path.join(a.out, "bag_priors.csv"), "w") as f:
    for s in ("low", "high"):
        for c in range(a.classes):
            f.write(f'"{s} resolution description of class {c}"\n')
g = torch.Generator().manual_seed(a.seed)
zi = torch.nn.functional.normalize(torch.randn(a.kt, 12, generator=g), dim=1)
zb = torch.nn.functional.normalize(torch.randn(a.classes, 12, generator=g), dim=1)
save_file({"embeddings": zi.contiguous()}, os.path.join(a.out, "z_ins.safetensors"))
save_file({"embeddings": zb.contiguous()}, os.path.join(a.out, "z_bag.safetensors"))
