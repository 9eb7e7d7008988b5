#!/usr/bin/python3
"""Reference-mode Libra-MIL fusion alone: libramil's Sinkhorn kernels vs a PyTorch anchor written
the way the public Libra-MIL code writes it, same shapes, same machine, same threads, one run
(issue #4, benchmark part).

What is timed, on both sides: forward + backward of
    cols = column sums of the N per-instance Sinkhorn plans (SPEC "Forward, reference mode"),
    loss = sum(cols o W)
with leaves a_t = softmax(randn (N, Kt)), a_v = softmax(randn (N, Kv)) and the shared cost
1 - cos(Pt, Pv) (Kt, Kv) (random prototypes), eps 0.05, 20 iterations, float32.

The anchor (`anchor_column_sums` below) follows SPEC's reference mode in the public code's
formulation: the shared cost is broadcast to one kernel exp(-C / eps) per instance, materialised
as (N, Kt, Kv); u, w are updated with einsum contractions; autograd records the unrolled loop;
the plan (N, Kt, Kv) is formed and summed over its rows. Ours: `libramil bench sinkhorn`
(ops::sinkhorn_column_sums: per-instance kernels, exact backward by recomputation).

Each timing runs in its own subprocess, so its peak RSS is its own (VmHWM; not getrusage's
ru_maxrss, which Linux carries over exec from this driver process); "work" memory is peak RSS
minus the RSS just before the timed steps (inputs already built).

Before timing, the script checks on a small N that both sides compute the same thing, on the
same inputs: column sums and the gradients of a_t, a_v and the cost, ours vs the anchor's.
float64: must agree to 1e-9 (the same function, up to rounding). float32: within 1e-4 of the
anchor's float32 result, or, where that fails, no further from the float64 result than 4x the
anchor's own float32 error (the criterion of tests/test_sinkhorn_kernels.cpp): the gradients of
a_t and of the cost are cancellation residues in this regime and PyTorch's own float32 values
are off from its float64 ones by up to tens of percent, so 1e-4 between two float32
implementations is not attainable for them.

With --device cuda (tools/gpu_check.sh) both sides run on the GPU: the anchor's tensors on
torch's CUDA device, ours with `bench sinkhorn --device cuda`; each timed forward and backward
ends with a device synchronisation, and memory is the device's instead of RSS: the peak of tensor
memory during the steps, inputs included (torch.cuda.max_memory_allocated against libramil's
caching-allocator peak). The check then runs both sides on the GPU too.

usage: /usr/bin/python3 bench/compare_sinkhorn.py --libramil build/libramil
           [--instances 8000,100000] [--threads 2] [--repeats 5] [--check-instances 64]
           [--device cpu|cuda]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openblas_env  # noqa: E402,F401  (before torch)
import numpy as np  # noqa: E402
import torch  # noqa: E402

EPS, ITERS, KT, KV, PROTO_DIM = 0.05, 20, 46, 10, 16


def anchor_column_sums(a_t, a_v, cost, eps=EPS, iters=ITERS):
    """Column sums (N, Kv) of the N plans with marginals a_t[n] (Kt), a_v[n] (Kv) and cost (Kt, Kv):
    SPEC's recurrence u = a / (K w + 1e-8), w = b / (K^T u + 1e-8) from u = 1/Kt, w = 1/Kv, in the
    public code's formulation (broadcast kernel, einsum updates, plan formed, autograd throughout)."""
    n, kt = a_t.shape
    kv = a_v.shape[1]
    kern = torch.exp(-cost.expand(n, kt, kv) / eps)  # one (Kt, Kv) kernel per instance, materialised
    u = torch.ones_like(a_t) / kt
    w = torch.ones_like(a_v) / kv
    for _ in range(iters):
        u = a_t / (torch.einsum("nij,nj->ni", kern, w) + 1e-8)
        w = a_v / (torch.einsum("nij,ni->nj", kern, u) + 1e-8)
    plan = kern * u.unsqueeze(-1) * w.unsqueeze(-2)
    return torch.einsum("nij->nj", plan)


def make_inputs(n, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    a_t = torch.softmax(torch.randn(n, KT, generator=g, dtype=torch.float64), -1)
    a_v = torch.softmax(torch.randn(n, KV, generator=g, dtype=torch.float64), -1)
    pt = torch.nn.functional.normalize(torch.randn(KT, PROTO_DIM, generator=g, dtype=torch.float64), dim=-1)
    pv = torch.nn.functional.normalize(torch.randn(KV, PROTO_DIM, generator=g, dtype=torch.float64), dim=-1)
    cost = 1 - pt @ pv.t()
    w = torch.randn(n, KV, generator=g, dtype=torch.float64)
    return {k: v.to(dtype) for k, v in dict(a_t=a_t, a_v=a_v, cost=cost, weights=w).items()}


def anchor_step(inp, device="cpu"):
    leaves = {k: inp[k].to(device).clone().requires_grad_(True) for k in ("a_t", "a_v", "cost")}
    cols = anchor_column_sums(leaves["a_t"], leaves["a_v"], leaves["cost"])
    (cols * inp["weights"].to(device)).sum().backward()
    return {"cols": cols.detach().cpu(), **{"grad_" + k: v.grad.cpu() for k, v in leaves.items()}}


def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss():
    """VmHWM: this process's own peak RSS (ru_maxrss would include the spawning driver's)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cmd_anchor(a):
    """Child process: time the anchor, print one JSON line."""
    torch.set_num_threads(a.threads)
    cuda = a.device != "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    inp = {k: v.to(a.device) for k, v in make_inputs(a.instances, seed=0).items()}
    a_t, a_v, cost = (inp[k].requires_grad_(True) for k in ("a_t", "a_v", "cost"))
    rss_before = rss_now()
    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats()
    steps, fwds = [], []
    for i in range(a.repeats + 1):
        for x in (a_t, a_v, cost):
            x.grad = None
        t0 = time.perf_counter()
        loss = (anchor_column_sums(a_t, a_v, cost) * inp["weights"]).sum()
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        if i > 0:
            steps.append((t2 - t0) * 1e3)
            fwds.append((t1 - t0) * 1e3)
    peak = peak_rss()
    device_peak = torch.cuda.max_memory_allocated() if cuda else 0
    # Tensor memory autograd keeps for the backward (distinct storages saved by the graph),
    # from one more, untimed forward.
    saved = {}

    def pack(t):
        s = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
        saved[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = (anchor_column_sums(a_t, a_v, cost) * inp["weights"]).sum()
    del loss
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "instances": a.instances, "threads": a.threads,
                      "median_ms": med(steps), "min_ms": min(steps), "forward_median_ms": med(fwds),
                      "autograd_saved_bytes": sum(saved.values()), "rss_before_bytes": rss_before,
                      "peak_rss_bytes": peak, "device": a.device, "device_peak_bytes": device_peak}))


# ---- safetensors (F32/F64 only; /usr/bin/python3 has no safetensors package) -----------------
_ST = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name].numpy())
        header[name] = {"dtype": _ST[arr.dtype], "shape": list(arr.shape), "data_offsets": [off, off + arr.nbytes]}
        blobs.append(arr.tobytes())
        off += arr.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, d in header.items():
        if name == "__metadata__":
            continue
        dt = {v: k for k, v in _ST.items()}[d["dtype"]]
        b, e = d["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + b:8 + n + e], dtype=dt).reshape(d["shape"]).copy())
    return out


def rel_err(x, ref):
    """max |x - ref| / max |ref| over the tensor (normwise: entries near zero do not dominate)."""
    x, ref = x.double(), ref.double()
    return ((x - ref).abs().max() / ref.abs().max().clamp_min(1e-300)).item()


def ours_step(a, env, inp):
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
        write_safetensors(src, inp)
        subprocess.run([a.libramil, "bench", "sinkhorn", "--check-inputs", src, "--check-output", dst,
                        "--threads", str(a.threads), "--device", a.device], check=True, capture_output=True,
                       text=True, env=env)
        return read_safetensors(dst)


def check(a, env):
    """Same inputs through ours and the anchor, float64 and float32. Returns (rows, ok): per output
    (name, ours64 vs torch64, ours32 vs torch32, ours32 vs torch64, torch32 vs torch64, verdict)."""
    inp32 = make_inputs(a.check_instances, seed=1)
    inp64 = {k: v.double() for k, v in inp32.items()}
    ours32, ours64 = ours_step(a, env, inp32), ours_step(a, env, inp64)
    ref32, ref64 = anchor_step(inp32, a.device), anchor_step(inp64, a.device)
    rows, ok = [], True
    for k in ref32:
        e64, e32 = rel_err(ours64[k], ref64[k]), rel_err(ours32[k], ref32[k])
        o32, t32 = rel_err(ours32[k], ref64[k]), rel_err(ref32[k], ref64[k])
        good64 = e64 <= 1e-9
        good32 = e32 <= a.tolerance or o32 <= 4 * t32
        ok = ok and good64 and good32
        rows.append((k, e64, e32, o32, t32, "ok" if good64 and good32 else "FAIL"))
    return rows, ok


def main():
    if sys.argv[1:2] == ["anchor"]:
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("--instances", type=int, required=True)
        ap.add_argument("--threads", type=int, default=2)
        ap.add_argument("--repeats", type=int, default=5)
        ap.add_argument("--device", default="cpu")
        return cmd_anchor(ap.parse_args())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--libramil", required=True)
    ap.add_argument("--instances", default="8000,100000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--check-instances", type=int, default=64)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--device", default="cpu", help="cpu | cuda: where both sides run (see above)")
    a = ap.parse_args()
    if a.device != "cpu" and not torch.cuda.is_available():
        sys.exit(f"compare_sinkhorn: --device {a.device}: torch sees no CUDA device")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    print(f"Kt={KT} Kv={KV} eps={EPS} iterations={ITERS} float32 device={a.device} threads={a.threads} repeats={a.repeats}; "
          f"torch {torch.__version__} with {openblas_env.describe()}; load average {os.getloadavg()[0]:.2f}")

    rows, ok = check(a, env)
    print(f"\nSame computation? N={a.check_instances}, same inputs; max |x - ref| / max |ref| per tensor")
    print("| output | f64: ours vs torch | f32: ours vs torch | f32 vs torch f64: ours | f32 vs torch f64: torch | |")
    print("|---|---:|---:|---:|---:|---|")
    for k, e64, e32, o32, t32, verdict in rows:
        print(f"| {k} | {e64:.1e} | {e32:.1e} | {o32:.1e} | {t32:.1e} | {verdict} |")
    print(f"check: {'PASS' if ok else 'FAIL'} (f64 <= 1e-9; f32 <= {a.tolerance:g} vs torch f32, "
          "or <= 4x torch f32's own error vs f64)", flush=True)

    cuda = a.device != "cpu"
    if cuda:
        print("\n| N | torch ms | ours ms | time ratio | torch fwd ms | ours fwd ms | torch peak device MB "
              "| ours peak device MB | memory ratio |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    else:
        print("\n| N | torch ms | ours ms | time ratio | torch fwd ms | ours fwd ms | torch peak RSS MB | ours peak RSS MB "
              "| RSS ratio | torch work MB | ours work MB | work ratio | torch saved MB | ours peak tensor MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    mb = lambda b: b / 2**20  # noqa: E731
    for n in a.instances.split(","):
        ref = json.loads(subprocess.run([sys.executable, os.path.abspath(__file__), "anchor", "--instances", n,
                                         "--threads", str(a.threads), "--repeats", str(a.repeats), "--device",
                                         a.device], check=True, capture_output=True,
                                        text=True, env=env).stdout.strip().splitlines()[-1])
        ours = json.loads(subprocess.run([a.libramil, "bench", "sinkhorn", "--instances", n, "--text-prototypes", str(KT),
                                          "--visual-prototypes", str(KV), "--iterations", str(ITERS), "--threads",
                                          str(a.threads), "--repeats", str(a.repeats), "--device", a.device],
                                         check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1])
        timing = (f"| {n} | {ref['median_ms']:.2f} | {ours['median_ms']:.2f} | {ref['median_ms'] / ours['median_ms']:.1f}x | "
                  f"{ref['forward_median_ms']:.2f} | {ours['forward_median_ms']:.2f} |")
        if cuda:
            print(f"{timing} {mb(ref['device_peak_bytes']):.1f} | {mb(ours['peak_bytes']):.1f} | "
                  f"{ref['device_peak_bytes'] / max(ours['peak_bytes'], 1):.1f}x |", flush=True)
            continue
        rw = ref["peak_rss_bytes"] - ref["rss_before_bytes"]
        ow = ours["peak_rss_bytes"] - ours["rss_before_bytes"]
        print(f"{timing} {mb(ref['peak_rss_bytes']):.0f} | "
              f"{mb(ours['peak_rss_bytes']):.0f} | {ref['peak_rss_bytes'] / ours['peak_rss_bytes']:.1f}x | {mb(rw):.0f} | "
              f"{mb(ow):.1f} | {rw / max(ow, 1):.0f}x | {mb(ref['autograd_saved_bytes']):.0f} | "
              f"{mb(ours['peak_bytes']):.1f} |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
