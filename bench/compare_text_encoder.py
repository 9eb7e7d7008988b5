#!/usr/bin/env python3
"""CONCH text tower (full size: 12 layers, width 768, random weights): ours
(bench/text_encoder_bench) vs the PyTorch forward of tools/text_reference.py, both on 2 CPU
threads, in the same run. 64 prompts long enough to fill all 128 positions.

usage: .venv/bin/python bench/compare_text_encoder.py --bench BUILD_DIR/text_encoder_bench
           [--repeats 3] [--work DIR] [--layers 12] [--torch-warmup 1]
Honours OPENBLAS_CORETYPE (Debian's OpenBLAS runs its Prescott kernels on this CPU unless it
is set, e.g. OPENBLAS_CORETYPE=SkylakeX); the BLAS core torch used is probed and printed.
Prints the timings, the agreement of the embeddings and a JSON line; writes only under --work.
"""
import argparse
import json
import os
import subprocess
import sys
import time

THREADS = 2
os.environ["OMP_NUM_THREADS"] = str(THREADS)
os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

import torch  # noqa: E402
import text_reference as ref  # noqa: E402
import convert_weights  # noqa: E402


def blas_core():
    """The OpenBLAS core name torch's BLAS reports (OPENBLAS_VERBOSE=2), in a subprocess."""
    env = dict(os.environ, OPENBLAS_VERBOSE="2")
    p = subprocess.run([sys.executable, "-c", "import torch; torch.mm(torch.ones(64, 64), torch.ones(64, 64))"],
                       env=env, capture_output=True, text=True)
    for line in (p.stdout + p.stderr).splitlines():
        if "Core:" in line:
            return line.split("Core:", 1)[1].strip()
    return "unknown (no OPENBLAS_VERBOSE output)"


def prompts(n=64):
    words = ("tumour stroma lymphocytes necrosis mitosis nuclei gland papillae cytoplasm invasive margin "
             "fibrosis haemorrhage carcinoma adenoma epithelium vessel").split()
    out = []
    for i in range(n):
        ws = [words[(i * 7 + j * 3) % len(words)] for j in range(160)]
        out.append(f"prompt {i}: " + " ".join(ws))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--torch-warmup", type=int, default=1, help="untimed torch calls first (0 on a slow machine)")
    ap.add_argument("--work", default=os.path.join(REPO, "build-text", "bench_text"))
    a = ap.parse_args()
    torch.set_num_threads(THREADS)
    os.makedirs(a.work, exist_ok=True)
    enc = os.path.join(a.work, f"conch_random_{a.layers}l.safetensors")
    if not os.path.exists(enc):
        ckpt = os.path.join(a.work, "conch_random.bin")
        ref.make_conch(ckpt, layers=a.layers, seed=1)
        convert_weights.convert_conch(ckpt, enc)
        os.remove(ckpt)
    texts = prompts()
    texts_path = os.path.join(a.work, "prompts.json")
    with open(texts_path, "w") as f:
        json.dump(texts, f)
    ours_out = os.path.join(a.work, "ours.safetensors")
    p = subprocess.run([a.bench, enc, texts_path, str(a.repeats), str(THREADS), ours_out],
                       check=True, capture_output=True, text=True)
    print(p.stdout.strip())
    ours = json.loads(p.stdout.strip().splitlines()[-1])

    W, meta = ref.load_encoder(enc)
    with torch.no_grad():
        for _ in range(a.torch_warmup):
            emb, _ = ref.conch_forward(W, meta, texts)
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            emb, _ = ref.conch_forward(W, meta, texts)
            times.append(time.perf_counter() - t0)
    times.sort()
    n = len(times)
    torch_median = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    from safetensors.torch import load_file
    mine = load_file(ours_out)["embeddings"]
    cos = torch.nn.functional.cosine_similarity(mine.double(), emb.double(), dim=-1)
    maxabs = (mine - emb).abs().max().item()
    core = blas_core()
    res = {
        "texts": len(texts), "tokens_per_text": 128, "layers": a.layers, "threads": THREADS,
        "ours_median_s": ours["median_s"], "torch_median_s": round(torch_median, 4),
        "torch_over_ours": round(torch_median / ours["median_s"], 3),
        "worst_cosine": cos.min().item(), "max_abs": maxabs,
        "torch": torch.__version__, "openblas_core": core,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
    }
    print(f"ours  {ours['median_s']:.3f} s  (median of {a.repeats})")
    print(f"torch {torch_median:.3f} s  (median of {a.repeats}; OpenBLAS core: {core})")
    print(f"agreement: worst cosine {res['worst_cosine']:.8f}, max abs {maxabs:.2e}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
