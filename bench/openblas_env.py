"""Makes the PyTorch anchor use OpenBLAS's proper kernels on this CPU.

Debian's OpenBLAS 0.3.21 does not recognise some virtualised Xeons and falls back to its
'Prescott' (SSE3) kernels, which would make every ratio against PyTorch look several times
better than it is. Unless the caller already set OPENBLAS_CORETYPE, pick SkylakeX on AVX-512
CPUs and Haswell on AVX2 CPUs, and Haswell when LIBRAMIL_CPU_ISA=avx2 forces our AVX2 kernels
on an AVX-512 CPU (both sides then run the code an AVX2-only processor gets). Import this
before torch; `describe()` says what was chosen.
"""
import os

_chosen = os.environ.get("OPENBLAS_CORETYPE")
if not _chosen:
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        pass
    forced = os.environ.get("LIBRAMIL_CPU_ISA", "").strip().lower()
    if " avx512f" in flags and forced != "avx2":
        _chosen = "SkylakeX"
    elif " avx2" in flags:
        _chosen = "Haswell"
    if _chosen:
        os.environ["OPENBLAS_CORETYPE"] = _chosen
        os.environ.pop("OPENBLAS_L2_SIZE", None)


def describe():
    return f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')}"
