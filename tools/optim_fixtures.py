#!/usr/bin/env python3
"""PyTorch reference runs for tests/test_nn_optim.cpp.

Usage: optim_fixtures.py DIR

For every DIR/case_<name>.safetensors (written by the C++ test) this trains the same small
MLP as the test with torch.optim and writes DIR/out_<name>.safetensors.

Input file: tensors "param.<state_dict name>" (initial weights of
  Sequential(Linear(5,7), LayerNorm(7), GELU(), Linear(7,3))), "x" (steps, B, 5) and
  "y" (steps, B) int64; metadata (all strings): optimizer (sgd | adam | adamw), dtype
  (f32 | f64), lr, steps, beta1, beta2, eps, weight_decay, momentum, schedule
  (constant | cosine), warmup, total, clip (0 = no clipping).
Per step s: zero_grad; loss = cross_entropy(model(x[s]), y[s]); backward; optional
  clip_grad_norm_; optimizer.step(); LambdaLR.step() (lambda = transformers'
  get_cosine_schedule_with_warmup with num_cycles 0.5, or 1).
Output file: the final state_dict under the same "param.<name>" keys, and "losses" (steps)
  float64.

DIR/mha.safetensors, when present, holds "q_in" (Lq, D), "kv_in" (Lk, D), "<p>.weight" and
"<p>.bias" for p in q_proj, k_proj, v_proj, o_proj, and metadata "heads"; the script writes
DIR/mha_out.safetensors with "out" = torch.nn.MultiheadAttention(D, heads) output for
query q_in and key = value = kv_in (in_proj = [q; k; v], out_proj = o).
"""
import glob
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def cosine_lambda(warmup, total):
    def f(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
    return f


def run_case(path, out_path):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    t = load_file(path)
    dtype = torch.float64 if meta["dtype"] == "f64" else torch.float32
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.LayerNorm(7), torch.nn.GELU(),
                                torch.nn.Linear(7, 3)).to(dtype)
    sd = {k[len("param."):]: v for k, v in t.items() if k.startswith("param.")}
    model.load_state_dict(sd, strict=True)
    x, y = t["x"], t["y"]
    lr = float(meta["lr"])
    wd = float(meta["weight_decay"])
    betas = (float(meta["beta1"]), float(meta["beta2"]))
    eps = float(meta["eps"])
    name = meta["optimizer"]
    if name == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=wd)
    elif name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=wd)
    elif name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=float(meta["momentum"]), weight_decay=wd)
    else:
        raise SystemExit("unknown optimizer " + name)
    if meta["schedule"] == "cosine":
        lam = cosine_lambda(int(meta["warmup"]), int(meta["total"]))
    else:
        lam = lambda step: 1.0  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    clip = float(meta["clip"])
    losses = []
    for s in range(int(meta["steps"])):
        opt.zero_grad()
        loss = F.cross_entropy(model(x[s]), y[s])
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
    out = {"param." + k: v.detach().contiguous() for k, v in model.state_dict().items()}
    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    save_file(out, out_path)


def run_mha(path, out_path):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    t = load_file(path)
    q_in, kv_in = t["q_in"], t["kv_in"]
    D = q_in.shape[-1]
    mha = torch.nn.MultiheadAttention(D, int(meta["heads"]), bias=True).to(q_in.dtype)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([t["q_proj.weight"], t["k_proj.weight"], t["v_proj.weight"]]))
        mha.in_proj_bias.copy_(torch.cat([t["q_proj.bias"], t["k_proj.bias"], t["v_proj.bias"]]))
        mha.out_proj.weight.copy_(t["o_proj.weight"])
        mha.out_proj.bias.copy_(t["o_proj.bias"])
        out, _ = mha(q_in.unsqueeze(1), kv_in.unsqueeze(1), kv_in.unsqueeze(1), need_weights=False)
    save_file({"out": out.squeeze(1).contiguous()}, out_path)


def main():
    torch.set_num_threads(1)
    d = sys.argv[1]
    cases = sorted(glob.glob(os.path.join(d, "case_*.safetensors")))
    for path in cases:
        name = os.path.basename(path)[len("case_"):]
        run_case(path, os.path.join(d, "out_" + name))
    mha = os.path.join(d, "mha.safetensors")
    if os.path.exists(mha):
        run_mha(mha, os.path.join(d, "mha_out.safetensors"))


if __name__ == "__main__":
    main()
