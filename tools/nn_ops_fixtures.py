#!/usr/bin/env python3
"""Reference fixtures for tests/test_nn_ops.cpp (run at test time with torch).

Usage: nn_ops_fixtures.py OUTDIR

For each case, builds inputs from a fixed seed, runs the op in torch (float64 or float32,
the case's dtype), and back-propagates a fixed random upstream gradient R (the gradient of
sum(out * R)) to every floating input. Writes

  OUTDIR/index.json           {"cases": [{"name", "op", "dtype", "params", "inputs", "grads",
                                          "tensors": {tensor: {"shape", "dtype"}}}]}
  OUTDIR/<case>.<tensor>.bin  raw little-endian values in the tensor's dtype
                              (float64, float32 or int64)

Tensors per case: the inputs (names in "inputs", in argument order), "R" (upstream gradient,
shape of out), "out", and "grad_<input>" for each input listed in "grads". float32 cases also
hold "out64" and "grad_<input>64": the same op run by torch in float64 on the (upcast) float32
inputs, i.e. the exact answer those float32 results approximate.

ops and params
  softmax, log_softmax   x; dim
  layer_norm             x, [weight], [bias]; eps
  cross_entropy          logits, target (int64)
  l2_normalize, l1_normalize   x; dim, eps
  cosine_similarity_matrix     a, b; eps   (l2-normalise rows, then a_n @ b_n^T)
  attention              q, k, v, [mask]; scale (0 = 1/sqrt(d))
                         softmax(q @ k^T * scale + mask) @ v (torch 1.13 has no
                         F.scaled_dot_product_attention, so it is spelled out)
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

DT = {"float64": torch.float64, "float32": torch.float32}


class Writer:
    def __init__(self, out):
        self.out = out
        self.cases = []

    def case(self, name, op, dtype, params, inputs, fn, grad_inputs=None, seed=0):
        """inputs: ordered dict name -> tensor (float64 master values or int64); float inputs are
        cast to dtype. fn(*inputs) -> out. grad_inputs: names that get gradients (default: all
        floating inputs)."""
        gen = torch.Generator().manual_seed(10_000 + seed)
        ins = {}
        for k, v in inputs.items():
            if v.is_floating_point():
                v = v.to(DT[dtype]).clone()
            ins[k] = v
        if grad_inputs is None:
            grad_inputs = [k for k, v in ins.items() if v.is_floating_point()]
        for k in grad_inputs:
            ins[k].requires_grad_(True)
        out = fn(*ins.values())
        R = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(DT[dtype])
        grads = torch.autograd.grad(out, [ins[k] for k in grad_inputs], R)
        tensors = {}

        def put(key, t):
            t = t.detach().contiguous()
            dt = {torch.float64: "float64", torch.float32: "float32", torch.int64: "int64"}[t.dtype]
            path = os.path.join(self.out, f"{name}.{key}.bin")
            t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tofile(path)
            tensors[key] = {"shape": list(t.shape), "dtype": dt}

        for k, v in ins.items():
            put(k, v)
        put("R", R)
        put("out", out)
        for k, g in zip(grad_inputs, grads):
            put("grad_" + k, g)
        if dtype == "float32":
            # The exact answer for these float32 inputs: the same op in float64 on the upcast
            # values (key suffix "64"). torch's own float32 result can be further from it than
            # 1e-5 (e.g. layer_norm with D = 1), so the test accepts a match with either.
            ins64 = {k: (v.detach().double().requires_grad_(k in grad_inputs) if v.is_floating_point() else v)
                     for k, v in ins.items()}
            out64 = fn(*ins64.values())
            grads64 = torch.autograd.grad(out64, [ins64[k] for k in grad_inputs], R.double())
            put("out64", out64)
            for k, g in zip(grad_inputs, grads64):
                put("grad_" + k + "64", g)
        self.cases.append({"name": name, "op": op, "dtype": dtype, "params": params,
                           "inputs": list(ins.keys()), "grads": grad_inputs, "tensors": tensors})

    def finish(self):
        with open(os.path.join(self.out, "index.json"), "w") as f:
            json.dump({"cases": self.cases}, f, indent=1)


def randn(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64) * scale


def causal_mask(lq, lk):
    # query i sees keys j <= i + (lk - lq): every row keeps at least one key
    m = torch.zeros(lq, lk, dtype=torch.float64)
    for i in range(lq):
        for j in range(lk):
            if j > i + (lk - lq):
                m[i, j] = -math.inf
    return m


def attention(scale):
    def f(q, k, v, mask=None):
        s = scale if scale > 0 else 1.0 / math.sqrt(q.shape[-1])
        scores = torch.matmul(q, k.transpose(-1, -2)) * s
        if mask is not None:
            scores = scores + mask
        return torch.matmul(torch.softmax(scores, dim=-1), v)
    return f


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    w = Writer(out)
    seed = 0
    for dtype in ("float64", "float32"):
        sfx = "f64" if dtype == "float64" else "f32"

        # ---- softmax / log_softmax ---------------------------------------------------------
        sm_shapes = [((4, 7), -1), ((5, 3), 0), ((3, 5, 7), 1), ((6, 1), -1), ((1, 9), 0),
                     ((2, 3, 4, 5), 0), ((11,), 0), ((3, 4, 6), -1), ((1, 1), -1),
                     ((40, 21, 23), 1), ((150, 111), -1)]  # last two: OpenMP-parallel paths
        for i, (shape, dim) in enumerate(sm_shapes):
            for op, fn in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
                seed += 1
                x = randn(shape, seed, 3.0)
                w.case(f"{op}_{i}_{sfx}", op, dtype, {"dim": dim}, {"x": x},
                       lambda x, fn=fn, dim=dim: fn(x, dim), seed=seed)
        # -inf entries (never a whole row)
        for op, fn in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
            seed += 1
            x = randn((4, 6), seed, 2.0)
            x[0, 1] = x[2, 5] = x[2, 0] = x[3, 3] = -math.inf
            w.case(f"{op}_neginf_{sfx}", op, dtype, {"dim": -1}, {"x": x},
                   lambda x, fn=fn: fn(x, -1), seed=seed)

        # ---- layer_norm --------------------------------------------------------------------
        ln = [("ln_357", (3, 5, 7), True, True, 1e-5, 0.0),
              ("ln_11", (1, 1), True, True, 1e-5, 0.0),
              ("ln_46_noaffine", (4, 6), False, False, 1e-5, 0.0),
              ("ln_238_weightonly", (2, 3, 8), True, False, 1e-3, 0.0),
              ("ln_offset", (5, 1, 16), True, True, 1e-5, 10.0),
              ("ln_big", (130, 131), True, True, 1e-5, 0.0)]  # parallel, several chunks
        for name, shape, hw, hb, eps, off in ln:
            seed += 1
            D = shape[-1]
            ins = {"x": randn(shape, seed) * 2.0 + off}
            if hw:
                ins["weight"] = 1.0 + 0.5 * randn((D,), seed + 1000)
            if hb:
                ins["bias"] = randn((D,), seed + 2000)

            def f(x, *wb, hw=hw, hb=hb, eps=eps):
                wt = wb[0] if hw else None
                bs = wb[-1] if hb else None
                return F.layer_norm(x, (x.shape[-1],), wt, bs, eps)
            w.case(f"{name}_{sfx}", "layer_norm", dtype, {"eps": eps}, ins, f, seed=seed)

        # ---- cross_entropy -----------------------------------------------------------------
        ce = [("ce_b5", (5, 4), [3, 0, 1, 3, 2]), ("ce_b1", (1, 3), [2]),
              ("ce_single", (6,), 4), ("ce_b7", (7, 10), [9, 0, 5, 5, 1, 8, 2]),
              ("ce_big", (200, 90), [(7 * i) % 90 for i in range(200)])]
        for name, shape, tgt in ce:
            seed += 1
            logits = randn(shape, seed, 2.0)
            target = torch.tensor(tgt, dtype=torch.int64)
            w.case(f"{name}_{sfx}", "cross_entropy", dtype, {}, {"logits": logits, "target": target},
                   lambda x, t: F.cross_entropy(x, t), seed=seed)

        # ---- normalize ---------------------------------------------------------------------
        for p, op in ((2, "l2_normalize"), (1, "l1_normalize")):
            seed += 1
            x = randn((4, 5), seed)
            x[1] = 0.0            # a zero row: out 0, grad g / eps
            x[3] = 1e-14 * x[3]   # norm below eps: denominator is the constant eps
            cases = [(f"{op}_zero_{sfx}", x, -1), (f"{op}_dim1_{sfx}", randn((3, 4, 2), seed + 7), 1),
                     (f"{op}_dim0_{sfx}", randn((5, 3), seed + 8), 0), (f"{op}_vec_{sfx}", randn((6,), seed + 9), 0)]
            for name, xx, dim in cases:
                w.case(name, op, dtype, {"dim": dim, "eps": 1e-12}, {"x": xx},
                       lambda x, p=p, dim=dim: F.normalize(x, p=p, dim=dim, eps=1e-12), seed=seed)

        def cosm(a, b):
            return F.normalize(a, dim=1, eps=1e-12) @ F.normalize(b, dim=1, eps=1e-12).t()
        seed += 1
        b = randn((3, 6), seed + 1)
        b[1] = 0.0
        w.case(f"cos_zero_{sfx}", "cosine_similarity_matrix", dtype, {"eps": 1e-12},
               {"a": randn((4, 6), seed), "b": b}, cosm, seed=seed)
        seed += 1
        w.case(f"cos_1x7_{sfx}", "cosine_similarity_matrix", dtype, {"eps": 1e-12},
               {"a": randn((1, 5), seed), "b": randn((7, 5), seed + 1)}, cosm, seed=seed)

        # ---- attention ---------------------------------------------------------------------
        att = [("att_basic", (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7), None, 0.0, False),
               ("att_causal", (2, 2, 4, 8), (2, 2, 6, 8), (2, 2, 6, 3), "causal", 0.0, False),
               ("att_scale_mask", (1, 1, 1, 3), (1, 1, 5, 3), (1, 1, 5, 2), (1, 1, 1, 5), 0.3, True),
               ("att_bmask", (2, 3, 3, 4), (2, 3, 5, 4), (2, 3, 5, 4), (2, 1, 3, 5), 0.0, True),
               ("att_square_causal", (1, 2, 5, 4), (1, 2, 5, 4), (1, 2, 5, 4), "causal", 0.0, False)]
        for name, sq, sk, sv, mask, scale, mask_grad in att:
            seed += 1
            ins = {"q": randn(sq, seed), "k": randn(sk, seed + 1), "v": randn(sv, seed + 2)}
            if mask == "causal":
                ins["mask"] = causal_mask(sq[2], sk[2])
            elif mask is not None:
                ins["mask"] = randn(mask, seed + 3)
            gi = ["q", "k", "v"] + (["mask"] if mask_grad else [])
            w.case(f"{name}_{sfx}", "attention", dtype, {"scale": scale}, ins, attention(scale),
                   grad_inputs=gi, seed=seed)
    w.finish()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
