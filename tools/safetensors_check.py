#!/usr/bin/env python3
"""Cross-checks libramil's safetensors writer and reader against the Python library.

Usage: safetensors_check.py DIR

Reads DIR/cpp_all.safetensors (written by tests/test_safetensors.cpp) with
safetensors.torch, and DIR/cpp_nobf16.safetensors (the same without "bf16") with
safetensors.numpy, and compares every tensor and the metadata with the expected values
below (exact equality). Then writes DIR/py.safetensors with safetensors.torch holding the
same tensors and metadata, for the C++ side to read. Exits 1 with a message on a mismatch.

Expected tensors (i = 0, 1, ... in row-major order):
  f32    float32  (3, 4)  i * 0.5 - 2.75
  f64    float64  (2, 3)  i / 3
  f16    float16  (5,)    i * 0.25 - 0.5
  bf16   bfloat16 (2, 2)  i * 1.5 + 0.5
  i64    int64    (4,)    i * 1000000007 - 3
  empty  float32  (0, 3)
  scalar float64  ()      3.25
metadata: {"format": "pt", "note": "h\u00e9llo \u2713"}
"""
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as np_load
from safetensors.torch import save_file


def expected():
    def seq(n):
        return torch.arange(n, dtype=torch.float64)
    return {
        "f32": (seq(12) * 0.5 - 2.75).to(torch.float32).reshape(3, 4),
        "f64": (seq(6) / 3.0).reshape(2, 3),
        "f16": (seq(5) * 0.25 - 0.5).to(torch.float16),
        "bf16": (seq(4) * 1.5 + 0.5).to(torch.bfloat16).reshape(2, 2),
        "i64": torch.arange(4, dtype=torch.int64) * 1000000007 - 3,
        "empty": torch.zeros((0, 3), dtype=torch.float32),
        "scalar": torch.tensor(3.25, dtype=torch.float64),
    }


META = {"format": "pt", "note": "h\u00e9llo \u2713"}
errors = []


def check(name, got, want):
    if got.dtype != want.dtype or tuple(got.shape) != tuple(want.shape) or not torch.equal(got, want):
        errors.append(f"{name}: got {got.dtype} {tuple(got.shape)} {got.flatten()[:6].tolist()}, "
                      f"want {want.dtype} {tuple(want.shape)} {want.flatten()[:6].tolist()}")


def main():
    d = sys.argv[1]
    want = expected()
    with safe_open(os.path.join(d, "cpp_all.safetensors"), framework="pt") as f:
        if f.metadata() != META:
            errors.append(f"metadata: got {f.metadata()!r}, want {META!r}")
        if sorted(f.keys()) != sorted(want.keys()):
            errors.append(f"keys: got {sorted(f.keys())}, want {sorted(want.keys())}")
        for k in f.keys():
            if k in want:
                check("torch/" + k, f.get_tensor(k), want[k])
    arrays = np_load(os.path.join(d, "cpp_nobf16.safetensors"))
    for k, w in want.items():
        if k == "bf16":
            continue
        if k not in arrays:
            errors.append(f"numpy: missing {k}")
            continue
        check("numpy/" + k, torch.from_numpy(np.array(arrays[k], copy=True)), w)
    save_file(want, os.path.join(d, "py.safetensors"), metadata=META)
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print("safetensors_check: ok")


if __name__ == "__main__":
    main()
