#!/usr/bin/env python3
"""A PyTorch implementation of Libra-MIL written from ../shared/docs/SPEC.md, independent
of the C++ code. It is the reference the C++ model is checked against (tests) and the anchor
the benchmarks are timed against (bench/).

Subcommands
  init   --out W.safetensors --dim D --text-dim Dt --kv Kv --kt Kt --classes C [--seed S]
         random weights with the reference state_dict names (PyTorch default inits).
  dump   --weights W.safetensors --features BAG.h5 --label L --mode paper|reference
         [--fusion softmax|literal|standardised --ot_epsilon 0.05 --ot_iter 20 --heads 8 --dtype float32|float64]
         [--ablation none|no_transport|no_instance_priors]
         --out OUT.safetensors : logits (C), loss (), grad.<name> for every parameter, and the
         explanation models/mil/patch_scores.h exports: explain.weight (N, the weight w_j each
         instance gets in Xf), explain.attention (C, N, the class queries' attention over the
         instances, mean over heads), explain.sim_text (N, Kt, cosine similarity of each
         projected instance to each projected text prototype).
  bench  --instances N --dim D --kt Kt --kv Kv --classes C --mode paper|reference [--device cuda]
         [--threads T --repeats R] : median ms of a training step (forward+backward+AdamW)
         and of a forward without autograd; prints a JSON line.
Run with /usr/bin/python3 (Debian's python3-torch) or the project venv.
"""
import argparse
import json
import math
import sys
import time

import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
if "bench" in sys.argv[1:2]:
    import openblas_env  # noqa: F401  (proper OpenBLAS kernels for the timing anchor)
import torch
import torch.nn as nn
import torch.nn.functional as F


class LibraMIL(nn.Module):
    def __init__(self, D, Dt, Kv, Kt, C, heads=8, mode="paper", fusion="softmax",
                 ot_epsilon=0.05, ot_iter=20, z_ins=None, z_bag=None, ablation="none"):
        super().__init__()
        self.mode, self.fusion, self.eps, self.iters, self.heads = mode, fusion, ot_epsilon, ot_iter, heads
        self.ablation = ablation
        z_ins = torch.randn(Kt, Dt) if z_ins is None else z_ins
        z_bag = torch.randn(C, Dt) if z_bag is None else z_bag
        self.proto_vis = nn.Parameter(torch.randn(Kv, D))
        self.prompt_inst = nn.Parameter(z_ins.clone())
        self.prompt_bag = nn.Parameter(z_bag.clone())
        self.proj_v = nn.Sequential(nn.Linear(D, D), nn.LayerNorm(D), nn.GELU())
        self.proj_llm = nn.Sequential(nn.Linear(Dt, D), nn.LayerNorm(D))
        self.temp_struct = nn.Parameter(torch.tensor(1.0))
        self.temp_vis = nn.Parameter(torch.tensor(1.0))
        self.q_proj = nn.Linear(D, D)
        self.k_proj = nn.Linear(D, D)
        self.v_proj = nn.Linear(D, D)
        self.o_proj = nn.Linear(D, D)
        self.classification_head = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, D), nn.ReLU(), nn.Linear(D, 1))

    # SPEC step 5: u = a / (K w + 1e-8); w = b / (K^T u + 1e-8), batched over leading dims.
    def sinkhorn(self, a, b, K):
        u = torch.full_like(a, 1.0 / a.shape[-1])
        w = torch.full_like(b, 1.0 / b.shape[-1])
        for _ in range(self.iters):
            u = a / (torch.matmul(K, w.unsqueeze(-1)).squeeze(-1) + 1e-8)
            w = b / (torch.matmul(K.transpose(-1, -2), u.unsqueeze(-1)).squeeze(-1) + 1e-8)
        return u.unsqueeze(-1) * K * w.unsqueeze(-2)

    def fuse_paper(self, V, Pv, Pt):
        Vn, Pvn, Ptn = F.normalize(V, dim=-1), F.normalize(Pv, dim=-1), F.normalize(Pt, dim=-1)
        Sv = Vn @ Pvn.t()                    # (N, Kv)
        St = Vn @ Ptn.t()                    # (N, Kt)
        if self.ablation == "no_transport":  # every instance weighs 1
            self.ex = {"sim_text": St.detach(), "weight": torch.ones(V.shape[0], dtype=V.dtype)}
            return V
        mu = torch.softmax(Sv.mean(0), 0)    # (Kv)
        if self.ablation == "no_instance_priors":  # visual similarities under the visual marginal
            s = Sv @ mu
        else:
            nu = torch.softmax(St.mean(0), 0)    # (Kt)
            cost = 1 - Pvn @ Ptn.t()             # (Kv, Kt)
            T = self.sinkhorn(mu, nu, torch.exp(-cost / self.eps))
            s = ((Sv @ T) * St).sum(1)           # (N)
        self.ex = {"sim_text": St.detach()}
        if self.fusion == "literal":
            self.ex["weight"] = s.detach()
            return s.unsqueeze(1) * V
        if self.fusion == "standardised":    # z-score within the bag (population variance)
            c = s - s.mean()
            s = c / torch.sqrt((c * c).mean() + 1e-8)
        w = V.shape[0] * torch.softmax(s / torch.exp(self.temp_vis), 0)
        self.ex["weight"] = w.detach()
        return w.unsqueeze(1) * V

    def fuse_reference(self, V, Pv, Pt):
        a_t = torch.softmax(V @ Pt.t() / torch.exp(self.temp_struct), -1)   # (N, Kt)
        a_v = torch.softmax(V @ Pv.t() / torch.exp(self.temp_vis), -1)      # (N, Kv)
        cost = 1 - F.normalize(Pt, dim=-1) @ F.normalize(Pv, dim=-1).t()   # (Kt, Kv)
        K = torch.exp(-cost / self.eps).unsqueeze(0).expand(V.shape[0], -1, -1)
        T = self.sinkhorn(a_t, a_v, K)                                      # (N, Kt, Kv)
        fused = torch.softmax(T.sum(1), -1)                                 # (N, Kv)
        self.ex = {"weight": fused.sum(-1).detach(),
                   "sim_text": (F.normalize(V, dim=-1) @ F.normalize(Pt, dim=-1).t()).detach()}
        return fused.sum(-1, keepdim=True) * V

    def attention(self, Pb, Xf):
        C, D = Pb.shape
        H, d = self.heads, D // self.heads
        q = self.q_proj(Pb).view(C, H, d).transpose(0, 1)          # (H, C, d)
        k = self.k_proj(Xf).view(-1, H, d).transpose(0, 1)         # (H, N, d)
        v = self.v_proj(Xf).view(-1, H, d).transpose(0, 1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1)
        self.ex["attention"] = a.mean(0).detach()                   # (C, N)
        return self.o_proj((a @ v).transpose(0, 1).reshape(C, D))

    def forward(self, X):
        V = self.proj_v(X)
        Pv = self.proj_v(self.proto_vis)
        Pt = self.proj_llm(self.prompt_inst)
        Pb = self.proj_llm(self.prompt_bag)
        Xf = self.fuse_paper(V, Pv, Pt) if self.mode == "paper" else self.fuse_reference(V, Pv, Pt)
        return self.classification_head(self.attention(Pb, Xf)).squeeze(-1)


def model_from_state(state, args):
    Kv, D = state["proto_vis"].shape
    Kt, Dt = state["prompt_inst"].shape
    C = state["prompt_bag"].shape[0]
    m = LibraMIL(D, Dt, Kv, Kt, C, heads=args.heads, mode=args.mode, fusion=args.fusion,
                 ot_epsilon=args.ot_epsilon, ot_iter=args.ot_iter, ablation=args.ablation)
    m.load_state_dict({k: v for k, v in state.items() if not k.startswith("T_")}, strict=True)
    return m


def read_features(path):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)["features"].float()
    if path.endswith(".pt"):
        return torch.load(path).float()
    import h5py
    with h5py.File(path, "r") as f:
        return torch.from_numpy(f["features"][()]).float()


def cmd_init(args):
    from safetensors.torch import save_file
    torch.manual_seed(args.seed)
    m = LibraMIL(args.dim, args.text_dim, args.kv, args.kt, args.classes, heads=args.heads)
    save_file({k: v.detach().contiguous() for k, v in m.state_dict().items()}, args.out)


def cmd_dump(args):
    from safetensors.torch import load_file, save_file
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    m = model_from_state(load_file(args.weights), args).to(dtype)
    X = read_features(args.features).to(dtype)
    if args.features.endswith(".safetensors") and dtype == torch.float64:
        from safetensors.torch import load_file
        X = load_file(args.features)["features"].to(dtype)
    logits = m(X)
    loss = F.cross_entropy(logits.unsqueeze(0), torch.tensor([args.label]))
    loss.backward()
    out = {"logits": logits.detach(), "loss": loss.detach()}
    for name, p in m.named_parameters():
        out["grad." + name] = p.grad if p.grad is not None else torch.zeros_like(p)
    for name, v in m.ex.items():
        out["explain." + name] = v
    save_file({k: v.contiguous().to(dtype) for k, v in out.items()}, args.out)


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    # Each timed step ends with a device synchronisation on CUDA, as `libramil bench` does.
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    m = LibraMIL(args.dim, args.dim, args.kv, args.kt, args.classes, heads=args.heads, mode=args.mode).to(dev)
    X = torch.randn(args.instances, args.dim).to(dev)
    y = torch.tensor([1 % args.classes]).to(dev)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01)
    import resource
    step_ms, fwd_ms = [], []
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    for i in range(args.repeats + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(m(X).unsqueeze(0), y)
        loss.backward()
        opt.step()
        sync()
        if i > 0:
            step_ms.append((time.perf_counter() - t0) * 1e3)
    with torch.no_grad():
        for i in range(args.repeats + 1):
            t0 = time.perf_counter()
            m(X)
            sync()
            if i > 0:
                fwd_ms.append((time.perf_counter() - t0) * 1e3)
    med = lambda v: sorted(v)[len(v) // 2]
    out = {"impl": "pytorch", "mode": args.mode, "instances": args.instances, "device": str(dev),
           "median_ms": med(step_ms), "forward_median_ms": med(fwd_ms),
           "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if cuda:
        out["peak_bytes"] = torch.cuda.max_memory_allocated(dev)  # the caching allocator's peak
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--mode", default="paper", choices=["paper", "reference"])
    common.add_argument("--fusion", default="softmax", choices=["softmax", "literal", "standardised"])
    common.add_argument("--ot_epsilon", type=float, default=0.05)
    common.add_argument("--ot_iter", type=int, default=20)
    common.add_argument("--heads", type=int, default=8)
    common.add_argument("--ablation", default="none", choices=["none", "no_transport", "no_instance_priors"])
    a = sub.add_parser("init", parents=[common])
    a.add_argument("--out", required=True)
    a.add_argument("--dim", type=int, default=512)
    a.add_argument("--text-dim", type=int, default=512)
    a.add_argument("--kv", type=int, default=10)
    a.add_argument("--kt", type=int, default=46)
    a.add_argument("--classes", type=int, default=3)
    a.add_argument("--seed", type=int, default=0)
    d = sub.add_parser("dump", parents=[common])
    d.add_argument("--weights", required=True)
    d.add_argument("--features", required=True)
    d.add_argument("--label", type=int, required=True)
    d.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    d.add_argument("--out", required=True)
    b = sub.add_parser("bench", parents=[common])
    b.add_argument("--instances", type=int, default=8000)
    b.add_argument("--dim", type=int, default=512)
    b.add_argument("--kv", type=int, default=10)
    b.add_argument("--kt", type=int, default=46)
    b.add_argument("--classes", type=int, default=3)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    args = p.parse_args()
    {"init": cmd_init, "dump": cmd_dump, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
