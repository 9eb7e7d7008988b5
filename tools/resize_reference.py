#!/usr/bin/env python3
"""PyTorch reference for tests/test_resize.cpp: torch.nn.functional.interpolate at realistic sizes.

Usage: resize_reference.py SCRATCH_DIR

SCRATCH_DIR/cases.json: {"cases": [{"key": "k", "dtype": "float32", "shape": [N, C, H, W],
                                    "size": [out_h, out_w], "mode": "bilinear", "antialias": true}]}
with KEY.x.bin (the input) and KEY.R.bin (the upstream gradient, shaped like the output),
row-major little-endian, no header. For each case writes KEY.out.bin = F.interpolate(x,
size, mode, align_corners=False, antialias) and KEY.gx.bin = the gradient of sum(out * R)
with respect to x (torch autograd), both in the case's dtype.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "cases.json")) as f:
        cases = json.load(f)["cases"]
    torch.set_num_threads(1)
    for c in cases:
        npdt = {"float32": np.float32, "float64": np.float64}[c["dtype"]]
        shape = c["shape"]
        x = np.fromfile(os.path.join(d, c["key"] + ".x.bin"), dtype=npdt).reshape(shape)
        x = torch.from_numpy(x.copy()).requires_grad_(True)
        out = F.interpolate(x, size=tuple(c["size"]), mode=c["mode"], align_corners=False,
                            antialias=c["antialias"])
        r = np.fromfile(os.path.join(d, c["key"] + ".R.bin"), dtype=npdt).reshape(list(out.shape))
        out.backward(torch.from_numpy(r.copy()))
        out.detach().contiguous().numpy().tofile(os.path.join(d, c["key"] + ".out.bin"))
        x.grad.contiguous().numpy().tofile(os.path.join(d, c["key"] + ".gx.bin"))


if __name__ == "__main__":
    main()
