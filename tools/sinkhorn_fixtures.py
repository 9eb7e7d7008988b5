#!/usr/bin/env python3
"""Reference fixtures for tests/test_sinkhorn_kernels.cpp (run at test time).

Usage: sinkhorn_fixtures.py OUTDIR

Writes OUTDIR/cases.txt, one line per case:
    name kind dtype B K1 K2 shared eps iters stabiliser
and OUTDIR/<name>.<tensor>.bin, raw little-endian float64 (float32 cases store the float32
values widened to float64, inputs included, so both sides start from identical numbers).

kinds
  torch_plain  the SPEC's loop (u-first, fixed iterations, 1e-8 terms) in torch with autograd:
               outputs u, w, plan, col, row; gradients ga, gb, gcost of
               loss = sum(gplan*plan) + sum(gcol*col) + sum(grow*row) + sum(gu*u) + sum(gw*w)
  torch_log    the log-domain loop (f = eps log u, g = eps log w, logsumexp updates; with
               stabiliser=1 the 1e-8 term enters as logaddexp(., log 1e-8)); outputs f, g, plan,
               col, row; gradients as above with gf, gg in place of gu, gw
  pot          ot.sinkhorn (POT's v-then-u Sinkhorn-Knopp) run to convergence: plan only
"""
import os
import sys
import warnings

import numpy as np
import torch

DELTA = 1e-8


def spec_loop(a, b, C, eps, iters):
    """The SPEC's recurrence, batched: a (B,K1), b (B,K2), C (K1,K2) or (B,K1,K2)."""
    K = torch.exp(-C / eps)
    if K.dim() == 2:
        K = K.expand(a.shape[0], -1, -1)
    u = torch.ones_like(a) / a.shape[1]
    w = torch.ones_like(b) / b.shape[1]
    for _ in range(iters):
        u = a / (torch.einsum("bij,bj->bi", K, w) + DELTA)
        w = b / (torch.einsum("bij,bi->bj", K, u) + DELTA)
    plan = u[:, :, None] * K * w[:, None, :]
    return u, w, plan


def log_loop(a, b, C, eps, iters, stab):
    if C.dim() == 2:
        C = C.expand(a.shape[0], -1, -1)
    B, K1, K2 = C.shape
    f = torch.full_like(a, eps * np.log(1.0 / K1))
    g = torch.full_like(b, eps * np.log(1.0 / K2))
    la, lb = torch.log(a), torch.log(b)
    ld = torch.tensor(np.log(DELTA), dtype=a.dtype)
    for _ in range(iters):
        L = torch.logsumexp((g[:, None, :] - C) / eps, dim=2)
        if stab:
            L = torch.logaddexp(L, ld)
        f = eps * (la - L)
        M = torch.logsumexp((f[:, :, None] - C) / eps, dim=1)
        if stab:
            M = torch.logaddexp(M, ld)
        g = eps * (lb - M)
    plan = torch.exp((f[:, :, None] + g[:, None, :] - C) / eps)
    return f, g, plan


def marginals(rng, B, K, zeros):
    x = rng.uniform(0.1, 1.0, size=(B, K))
    if zeros and K > 2:
        for r in range(B):
            x[r, rng.integers(0, K)] = 0.0
    return x / x.sum(axis=1, keepdims=True)


class Writer:
    def __init__(self, out):
        self.out = out
        self.lines = []

    def tensor(self, name, key, x):
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        np.ascontiguousarray(x, dtype="<f8").tofile(os.path.join(self.out, f"{name}.{key}.bin"))

    def case(self, name, kind, dtype, B, K1, K2, shared, eps, iters, stab=0):
        self.lines.append(f"{name} {kind} {dtype} {B} {K1} {K2} {int(shared)} {eps!r} {iters} {stab}")

    def close(self):
        with open(os.path.join(self.out, "cases.txt"), "w") as f:
            f.write("\n".join(self.lines) + "\n")


def torch_case(wr, rng, name, kind, dtype, B, K1, K2, shared, eps, iters, zeros, stab=0,
               cost_range=(0.0, 2.0), which=("plan", "col", "row", "u", "w")):
    tdt = torch.float64 if dtype == "f64" else torch.float32
    a = marginals(rng, B, K1, zeros)
    b = marginals(rng, B, K2, zeros)
    C = rng.uniform(*cost_range, size=(K1, K2) if shared else (B, K1, K2))
    ups = {
        "plan": rng.standard_normal((B, K1, K2)),
        "col": rng.standard_normal((B, K2)),
        "row": rng.standard_normal((B, K1)),
        "u": rng.standard_normal((B, K1)),
        "w": rng.standard_normal((B, K2)),
    }
    # Round inputs to the case's dtype, so both sides see identical numbers.
    a, b, C = (torch.tensor(x, dtype=tdt).double().numpy() for x in (a, b, C))
    ups = {k: torch.tensor(v, dtype=tdt).double().numpy() for k, v in ups.items()}

    def evaluate(dt):
        at = torch.tensor(a, dtype=dt, requires_grad=True)
        bt = torch.tensor(b, dtype=dt, requires_grad=True)
        Ct = torch.tensor(C, dtype=dt, requires_grad=True)
        upt = {k: torch.tensor(v, dtype=dt) for k, v in ups.items()}
        if kind == "torch_plain":
            u, w, plan = spec_loop(at, bt, Ct, eps, iters)
        else:
            u, w, plan = log_loop(at, bt, Ct, eps, iters, stab)  # u, w are f, g here
        col, row = plan.sum(dim=1), plan.sum(dim=2)
        outs = {"plan": plan, "col": col, "row": row, "u": u, "w": w}
        loss = sum((upt[k] * outs[k]).sum() for k in which)
        ga, gb, gC = torch.autograd.grad(loss, (at, bt, Ct), allow_unused=True)
        outs["ga"] = torch.zeros_like(at) if ga is None else ga  # iterations 0: no a, b dependence
        outs["gb"] = torch.zeros_like(bt) if gb is None else gb
        outs["gcost"] = gC
        return {k: v.detach().double() for k, v in outs.items()}

    outs = evaluate(tdt)
    for key, x in [("a", a), ("b", b), ("cost", C)]:
        wr.tensor(name, key, x)
    for k, v in outs.items():
        wr.tensor(name, k, v)
    if dtype == "f32":  # the same inputs in float64: how far float32 itself is from exact
        for k, v in evaluate(torch.float64).items():
            wr.tensor(name, k + "_f64", v)
    for k in ("plan", "col", "row", "u", "w"):
        # an upstream gradient not in `which` is written as zeros (the C++ side passes all five)
        wr.tensor(name, "g" + k, ups[k] if k in which else np.zeros_like(ups[k]))
    wr.case(name, kind, dtype, B, K1, K2, shared, eps, iters, stab)


def pot_case(wr, rng, name, K1, K2, eps, zeros_a, zeros_b, cmax=2.0):
    import ot

    a = marginals(rng, 1, K1, zeros_a)[0]
    b = marginals(rng, 1, K2, zeros_b)[0]
    C = rng.uniform(0.0, cmax, size=(K1, K2))
    # POT divides by a (Kp = K / a), so a zero in a breaks it at iteration 0; solve on the
    # support of a and put zero rows back (a zero marginal entry gives a zero plan row).
    rows = a > 0
    plan = np.zeros((K1, K2))
    plan[rows] = ot.sinkhorn(a[rows], b, C[rows], reg=eps, numItermax=200000, stopThr=1e-14,
                             warn=True)
    assert np.all(np.isfinite(plan)), name
    for key, x in [("a", a[None]), ("b", b[None]), ("cost", C), ("plan", plan[None])]:
        wr.tensor(name, key, x)
    wr.case(name, "pot", "f64", 1, K1, K2, 1, eps, 0, 0)


def main():
    warnings.simplefilter("error")  # a POT convergence warning must fail the fixture run
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    rng = np.random.default_rng(20260511)
    wr = Writer(out)
    for dt in ("f64", "f32"):
        # name kind dtype B K1 K2 shared eps iters zeros
        torch_case(wr, rng, f"paper_{dt}", "torch_plain", dt, 1, 10, 46, True, 0.05, 20, False)
        torch_case(wr, rng, f"shared_zeros_{dt}", "torch_plain", dt, 3, 10, 46, True, 0.05, 20, True)
        torch_case(wr, rng, f"batched_{dt}", "torch_plain", dt, 4, 7, 5, False, 0.1, 15, True)
        torch_case(wr, rng, f"k1_{dt}", "torch_plain", dt, 3, 1, 6, True, 0.05, 20, False)
        torch_case(wr, rng, f"k2_{dt}", "torch_plain", dt, 2, 5, 1, False, 0.05, 20, False)
        torch_case(wr, rng, f"ref_{dt}", "torch_plain", dt, 6, 46, 10, True, 0.05, 20, True,
                   which=("col",))
        torch_case(wr, rng, f"iters0_{dt}", "torch_plain", dt, 2, 3, 4, False, 0.05, 0, False)
        torch_case(wr, rng, f"log_{dt}", "torch_log", dt, 3, 8, 6, False, 0.05, 20, False)
        torch_case(wr, rng, f"logsmall_{dt}", "torch_log", dt, 2, 9, 7, True, 1e-3, 30, False,
                   cost_range=(0.8, 1.5))
        torch_case(wr, rng, f"logstab_{dt}", "torch_log", dt, 2, 6, 5, True, 0.05, 20, False,
                   stab=1)
    for k, (K1, K2, eps, za, zb) in enumerate([(10, 46, 0.05, False, False), (46, 10, 0.1, False, True),
                                               (7, 9, 0.05, True, False), (5, 5, 0.1, True, True)]):
        pot_case(wr, rng, f"pot{k}", K1, K2, eps, za, zb)
    # well conditioned for the 1e-8 terms: Kmat entries >= exp(-5)
    pot_case(wr, rng, "pot_wc0", 10, 46, 0.1, False, False, cmax=0.5)
    pot_case(wr, rng, "pot_wc1", 46, 10, 0.1, True, True, cmax=0.5)
    pot_case(wr, rng, "pot_wc2", 8, 8, 0.05, False, True, cmax=0.25)
    wr.close()


if __name__ == "__main__":
    main()
