#!/usr/bin/env python3
"""PyTorch reference for the op table test (tests/test_op_table.cpp).

Usage: op_table_reference.py SCRATCH_DIR

SCRATCH_DIR/index.json lists cases written by the C++ test:
  {"cases": [{"key": "...", "op": "add", "params": {...},
              "inputs": [{"file": "k.in0.bin", "dtype": "float32", "shape": [2, 3], "grad": true}, ...],
              "grad_out": {"file": "k.R.bin", "dtype": "float32", "shape": [2, 3]}}, ...]}
Every .bin file is the tensor's elements in row-major order, little-endian, no header.

For each case this script evaluates the op *by name* with torch's own functions (never by
reading libramil's outputs), runs out.backward(R), and writes
  KEY.out.bin          the output
  KEY.gin<i>.bin       the gradient of input i (for inputs with "grad": true)
("grad_out": null marks a forward-only case, e.g. argmax.)
and SCRATCH_DIR/results.json: {"KEY": {"out_shape": [...], "error": null | "message"}}.
"""
import json
import math
import os
import sys
import traceback

import numpy as np
import torch
import torch.nn.functional as F

NP_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64}


def load(d, spec):
    arr = np.fromfile(os.path.join(d, spec["file"]), dtype=NP_DTYPES[spec["dtype"]])
    return torch.from_numpy(arr.reshape(spec["shape"]).copy())


def slice_op(x, dim, start, end, step):
    idx = [slice(None)] * x.dim()
    idx[dim] = slice(start, end, step)
    return x[tuple(idx)]


def cross_entropy(logits, target):
    if logits.dim() == 1:  # one sample: (C) logits, scalar or (1) target
        return F.cross_entropy(logits.unsqueeze(0), target.reshape(1))
    return F.cross_entropy(logits, target)


def cosine_similarity_matrix(a, b, eps):
    # Pairwise cosines through torch's own cosine_similarity with broadcasting.
    return F.cosine_similarity(a.unsqueeze(1), b.unsqueeze(0), dim=-1, eps=eps)


def attention(q, k, v, mask, scale):
    if not scale or scale <= 0:
        scale = 1.0 / math.sqrt(q.shape[-1])
    s = torch.matmul(q, k.transpose(-2, -1)) * scale
    if mask is not None:
        s = s + mask
    return torch.matmul(torch.softmax(s, dim=-1), v)


def sinkhorn(a, b, cost, p, plan_out):
    """The SPEC recurrence, unrolled under torch autograd: Kmat = exp(-cost / eps),
    w = 1/K2, `iterations` times {u = a / (Kmat w + d); w = b / (Kmat^T u + d)},
    plan = diag(u) Kmat diag(w); d = 1e-8, or 0 in log-domain mode (ops/sinkhorn.h)."""
    kmat = torch.exp(-cost / p["epsilon"])
    d = 0.0 if p["log_domain"] else 1e-8
    w = torch.ones_like(b) / b.shape[-1]
    u = torch.ones_like(a) / a.shape[-1]
    for _ in range(p["iterations"]):
        u = a / (torch.matmul(kmat, w.unsqueeze(-1)).squeeze(-1) + d)
        w = b / (torch.matmul(kmat.transpose(-2, -1), u.unsqueeze(-1)).squeeze(-1) + d)
    plan = u.unsqueeze(-1) * kmat * w.unsqueeze(-2)
    return plan if plan_out else plan.sum(-2)


def run_op(op, p, x):
    """x: list of input tensors. Returns the single output tensor."""
    if op == "add":
        return torch.add(x[0], x[1])
    if op == "sub":
        return torch.sub(x[0], x[1])
    if op == "mul":
        return torch.mul(x[0], x[1])
    if op == "div":
        return torch.div(x[0], x[1])
    if op == "eq":
        return torch.eq(x[0], x[1]).to(x[0].dtype)
    if op == "add_scalar":
        return torch.add(x[0], p["s"])
    if op == "mul_scalar":
        return torch.mul(x[0], p["s"])
    if op == "rsub":
        return torch.rsub(x[0], p["s"])
    if op == "neg":
        return torch.neg(x[0])
    if op == "exp":
        return torch.exp(x[0])
    if op == "log":
        return torch.log(x[0])
    if op == "sqrt":
        return torch.sqrt(x[0])
    if op == "pow":
        return torch.pow(x[0], p["e"])
    if op == "abs":
        return torch.abs(x[0])
    if op == "clamp":
        return torch.clamp(x[0], p["lo"], p["hi"])
    if op == "relu":
        return F.relu(x[0])
    if op == "relu6":
        return F.relu6(x[0])
    if op == "sigmoid":
        return torch.sigmoid(x[0])
    if op == "tanh":
        return torch.tanh(x[0])
    if op == "gelu":
        return F.gelu(x[0])  # exact erf form
    if op == "matmul":
        return torch.matmul(x[0], x[1])
    if op == "linear":
        return F.linear(x[0], x[1], x[2] if len(x) > 2 else None)
    if op in ("sum", "mean", "amax", "logsumexp"):
        dims = p.get("dims")
        if dims is None:  # all elements
            return {"sum": torch.sum, "mean": torch.mean, "amax": torch.amax,
                    "logsumexp": lambda t: torch.logsumexp(t.reshape(-1), 0)}[op](x[0])
        f = {"sum": torch.sum, "mean": torch.mean, "amax": torch.amax, "logsumexp": torch.logsumexp}[op]
        return f(x[0], dims, keepdim=p["keepdim"])
    if op == "max":
        return torch.max(x[0], p["dim"], keepdim=p["keepdim"]).values
    if op == "softmax":
        return F.softmax(x[0], dim=p["dim"])
    if op == "log_softmax":
        return F.log_softmax(x[0], dim=p["dim"])
    if op == "layer_norm":
        w = x[1] if len(x) > 1 else None
        b = x[2] if len(x) > 2 else None
        return F.layer_norm(x[0], (x[0].shape[-1],), w, b, p["eps"])
    if op == "l2_norm_clamped":
        return torch.linalg.vector_norm(x[0], dim=-1).clamp_min(p["eps"])
    if op == "scale_rows":
        return x[1].unsqueeze(1) * x[0]
    if op == "bilinear_rows":
        return torch.einsum("ip,pq,iq->i", x[0], x[1], x[2])
    if op == "weighted_attention_pool":
        attn = torch.softmax(x[0].t() * (x[1] * p["scale"]), -1)
        return (attn * x[1]) @ x[2]
    if op in ("linear_layer_norm", "linear_layer_norm_gelu"):
        y = F.layer_norm(F.linear(x[0], x[1], x[4] if p["bias"] else None), (x[1].shape[0],), x[2], x[3], p["eps"])
        return F.gelu(y) if op == "linear_layer_norm_gelu" else y
    if op == "cross_entropy":
        return cross_entropy(x[0], x[1])
    if op == "l2_normalize":
        return F.normalize(x[0], p=2.0, dim=p["dim"], eps=p["eps"])
    if op == "l1_normalize":
        return F.normalize(x[0], p=1.0, dim=p["dim"], eps=p["eps"])
    if op == "cosine_similarity_matrix":
        return cosine_similarity_matrix(x[0], x[1], p["eps"])
    if op == "scaled_dot_product_attention":
        return attention(x[0], x[1], x[2], x[3] if len(x) > 3 else None, p.get("scale", 0.0))
    if op == "reshape":
        return x[0].reshape(p["shape"])
    if op == "permute":
        return x[0].permute(p["dims"])
    if op == "transpose":
        return x[0].transpose(p["d0"], p["d1"])
    if op == "t":
        return x[0].t()
    if op == "expand":
        return x[0].expand(p["shape"])
    if op == "slice":
        return slice_op(x[0], p["dim"], p["start"], p["end"], p["step"])
    if op == "select":
        return x[0].select(p["dim"], p["index"])
    if op == "unsqueeze":
        return x[0].unsqueeze(p["dim"])
    if op == "squeeze":
        return x[0].squeeze(p["dim"])
    if op == "flatten":
        return torch.flatten(x[0], p["start"], p["end"])
    if op == "contiguous":
        return x[0].contiguous()
    if op == "cat":
        return torch.cat(x, p["dim"])
    if op == "stack":
        return torch.stack(x, p["dim"])
    if op == "sinkhorn_plan":
        return sinkhorn(x[0], x[1], x[2], p, True)
    if op == "sinkhorn_column_sums":
        return sinkhorn(x[0], x[1], x[2], p, False)
    if op == "argmax":
        return torch.argmax(x[0], p["dim"], keepdim=p["keepdim"])
    if op == "sum_to":
        return x[0].sum_to_size(p["shape"])
    if op == "index_select":
        return torch.index_select(x[0], p["dim"], x[1])
    if op == "conv2d":  # explicit (possibly asymmetric) zero padding, then an unpadded conv
        xp = F.pad(x[0], (p["pad_left"], p["pad_right"], p["pad_top"], p["pad_bottom"]))
        return F.conv2d(xp, x[1], x[2] if len(x) > 2 else None, stride=(p["stride_h"], p["stride_w"]),
                        groups=p["groups"])
    if op == "adaptive_avg_pool2d":
        return F.adaptive_avg_pool2d(x[0], (p["out_h"], p["out_w"]))
    if op == "resize_image":
        return F.interpolate(x[0], size=tuple(p["size"]), mode=p["mode"], align_corners=False,
                             antialias=p["antialias"])
    if op == "normalize_channels":  # torchvision's Normalize: (x - mean) / std per channel
        mean = torch.tensor(p["mean"], dtype=x[0].dtype).view(1, -1, 1, 1)
        std = torch.tensor(p["std"], dtype=x[0].dtype).view(1, -1, 1, 1)
        return (x[0] - mean) / std
    raise ValueError("op_table_reference.py: unknown op '%s'" % op)


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "index.json")) as f:
        index = json.load(f)
    torch.set_num_threads(1)
    results = {}
    for case in index["cases"]:
        key = case["key"]
        try:
            xs = []
            for spec in case["inputs"]:
                t = load(d, spec)
                if spec["grad"]:
                    t.requires_grad_(True)
                xs.append(t)
            ys = list(xs)  # "pre_transpose": inputs the C++ op reads through transpose(x, -1, -2)
            for i in case["params"].get("pre_transpose", []):
                ys[i] = ys[i].transpose(-2, -1)
            out = run_op(case["op"], case["params"], ys)
            if case.get("grad_out") is not None:
                r = load(d, case["grad_out"])
                if list(out.shape) != list(r.shape):
                    raise ValueError("torch output shape %s differs from libramil's %s" % (list(out.shape), list(r.shape)))
                out.backward(r)
            out.detach().contiguous().numpy().tofile(os.path.join(d, key + ".out.bin"))
            for i, (spec, t) in enumerate(zip(case["inputs"], xs)):
                if not spec["grad"]:
                    continue
                g = t.grad if t.grad is not None else torch.zeros_like(t)
                g.contiguous().numpy().tofile(os.path.join(d, "%s.gin%d.bin" % (key, i)))
            results[key] = {"out_shape": list(out.shape), "out_dtype": str(out.dtype).replace("torch.", ""),
                            "error": None}
        except Exception as e:  # reported per case by the C++ test
            results[key] = {"out_shape": None, "error": "%s: %s" % (type(e).__name__, e),
                            "trace": traceback.format_exc()}
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
