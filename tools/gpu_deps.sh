#!/usr/bin/env bash
# Carries what the build and the tests need to a lent GPU machine, whose image has the CUDA
# toolkit, CMake, g++ and a python3 with torch, but no apt, no pip index and no network
# (docs/cuda.md, "Before the first run on a lent GPU machine").
#
#   bash tools/gpu_deps.sh fetch        here (Debian 12, network): fills .gpudeps/ (~16 MB) with
#                                       the build's Debian packages and their runtime libraries,
#                                       the POT wheel for the image's Python 3.12, the shared test
#                                       data (data/mil, data/conch), MiniLM's tokenizer files and
#                                       cuDNN's graph headers;
#                                       adds /.gpudeps/ to .git/info/exclude. Name .gpudeps in the
#                                       run's `carry`.
#   source tools/gpu_deps.sh activate   there (tools/gpu_check.sh does this itself when
#                                       .gpudeps/ exists): unpacks the packages into
#                                       .gpudeps/root only if the compiler lacks a header, links
#                                       into .gpudeps/lib only the shared libraries the machine
#                                       lacks (never shadowing its own), installs the wheels into
#                                       .gpudeps/site if `import ot` fails, and exports CPATH,
#                                       LIBRARY_PATH, LD_LIBRARY_PATH, CMAKE_PREFIX_PATH,
#                                       PYTHONPATH, LIBRAMIL_SHARED_DIR, LIBRAMIL_MINILM_DIR.
#
# MiniLM's weights (88 MB) exceed what a run may carry (64 MiB): its encoder-vs-PyTorch case
# cannot run there, and tools/gpu_check.sh says so in its table.

# The build's development packages, the runtime packages they name, and (found by `ldd` below)
# every library those need, minus glibc and the compiler's own.
GPU_DEPS_DEBS="libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev doctest-dev libhdf5-dev \
libhdf5-103-1 libsz2 libaec0 libutf8proc-dev libutf8proc2 libstb-dev libstb0"
GPU_DEPS_PYTHON_VERSION=${GPU_DEPS_PYTHON_VERSION:-3.12}
# 0.9.6.post1: its wheel is 1.5 MB; 0.9.7's is 32 MB, half of what a run may carry.
GPU_DEPS_POT=${GPU_DEPS_POT:-pot==0.9.6.post1}

gpu_deps_fetch() {
  set -euo pipefail
  local repo dir
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  dir=${GPU_DEPS_DIR:-$repo/.gpudeps}
  grep -qxF '/.gpudeps/' "$repo/.git/info/exclude" 2>/dev/null || echo '/.gpudeps/' >>"$repo/.git/info/exclude"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/debs" "$dir.tmp/whl" "$dir.tmp/shared/data" "$dir.tmp/minilm"
  # Runtime closure of the three shared libraries the build links.
  local libs pkgs="" p f
  libs=$(for l in /usr/lib/x86_64-linux-gnu/libhdf5_serial.so.103 /usr/lib/x86_64-linux-gnu/libfmt.so.9 \
                  /usr/lib/x86_64-linux-gnu/libutf8proc.so.2; do
           ldd "$l" | awk '/=> \//{print $3}'
         done | sort -u)
  for f in $libs; do
    p=$(dpkg -S "$f" 2>/dev/null || dpkg -S "$(readlink -f "$f")" 2>/dev/null ||
        dpkg -S "${f#/usr}" 2>/dev/null || dpkg -S "/usr$f" 2>/dev/null || true)
    p=${p%%:*}
    case "$p" in ""|libc6|libstdc++6|libgcc-s1) ;; *) pkgs="$pkgs $p" ;; esac
  done
  pkgs=$(echo $GPU_DEPS_DEBS $pkgs | tr ' ' '\n' | sort -u | tr '\n' ' ')
  echo "gpu_deps: downloading $(echo $pkgs | wc -w) Debian packages"
  (cd "$dir.tmp/debs" && apt-get download $pkgs >/dev/null)
  # POT for the image's CPython (numpy and scipy are there already).
  local pip=${GPU_DEPS_PIP:-$repo/.venv/bin/pip}
  [ -x "$pip" ] || pip="python3 -m pip"
  echo "gpu_deps: downloading $GPU_DEPS_POT for CPython $GPU_DEPS_PYTHON_VERSION"
  $pip download --quiet --no-deps --only-binary=:all: --python-version "$GPU_DEPS_PYTHON_VERSION" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dir.tmp/whl" "$GPU_DEPS_POT"
  # CONCH's tokenizer (not in the repository; tests/data travels with the tree) and MiniLM's
  # small files (tokenizer tests).
  bash "$repo/tools/setup_conch_tokenizer.sh" >&2
  mkdir -p "$dir.tmp/shared/data/conch"
  cp "${LIBRAMIL_HOME:-${HOME:-.}/.cache/libramil}/tokenizers/conch_byte_level_bpe_uncased.json" "$dir.tmp/shared/data/conch/"
  local mini=${LIBRAMIL_MINILM_DIR:-$repo/.cache/minilm}
  if [ ! -f "$mini/config.json" ]; then bash "$repo/tools/fetch_minilm.sh" "$mini"; fi
  (cd "$mini" && find . -type f ! -name 'model.safetensors' ! -name '*.bin' ! -name '*.onnx' \
     -exec cp --parents {} "$dir.tmp/minilm/" \;)
  # cuDNN's graph headers (~0.1 MB) for the optional cuDNN attention path, in case the image's
  # toolkit lacks them (the library itself comes from the image or from torch's wheel).
  local cudnn_inc=${CUDNN_INCLUDE_DIR:-/usr/local/cuda/include}
  if [ -f "$cudnn_inc/cudnn_graph.h" ]; then
    mkdir -p "$dir.tmp/cudnn/include"
    cp "$cudnn_inc"/cudnn_graph*.h "$cudnn_inc"/cudnn_version*.h "$dir.tmp/cudnn/include/"
  fi
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  echo "gpu_deps: $(du -sh "$dir" | cut -f1) in $dir; name .gpudeps in the run's carry"
}

# Sourced: exports into the caller's shell. Returns non-zero with a message on failure.
gpu_deps_activate() {
  local repo dir cxx root lib have_all=1 h
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  dir=${GPU_DEPS_DIR:-$repo/.gpudeps}
  [ -d "$dir" ] || { echo "gpu_deps: no $dir (run 'bash tools/gpu_deps.sh fetch' on a Debian machine)" >&2; return 1; }
  cxx=${CXX:-$(command -v c++ || command -v g++ || true)}
  [ -n "$cxx" ] || { echo "gpu_deps: no C++ compiler" >&2; return 1; }
  for h in fmt/core.h nlohmann/json.hpp CLI/CLI.hpp doctest/doctest.h utf8proc.h hdf5.h stb_image_write.h; do
    echo "#include <$h>" | "$cxx" -std=c++20 -I/usr/include/hdf5/serial -I/usr/include/stb -E -x c++ - \
      >/dev/null 2>&1 || { have_all=0; break; }
  done
  root=$dir/root
  lib=$dir/lib
  if [ $have_all = 0 ]; then
    if [ ! -f "$root/.unpacked" ]; then
      rm -rf "$root" && mkdir -p "$root"
      local f
      for f in "$dir"/debs/*.deb; do
        if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$f" "$root"
        else  # a .deb is an ar archive holding data.tar.{xz,zst,gz}
          local m; m=$(ar t "$f" | grep '^data\.tar')
          case "$m" in *.xz) ar p "$f" "$m" | tar -x -J -C "$root" ;; *.zst) ar p "$f" "$m" | tar -x --zstd -C "$root" ;;
                       *) ar p "$f" "$m" | tar -x -z -C "$root" ;; esac
        fi || { echo "gpu_deps: cannot unpack $f" >&2; return 1; }
      done
      touch "$root/.unpacked"
    fi
    local ml=$root/usr/lib/x86_64-linux-gnu
    export CPATH=$root/usr/include:$root/usr/include/hdf5/serial:$root/usr/include/stb${CPATH:+:$CPATH}
    export LIBRARY_PATH=$ml:$ml/hdf5/serial${LIBRARY_PATH:+:$LIBRARY_PATH}
    export CMAKE_PREFIX_PATH=$root/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
    export GPU_DEPS_CMAKE_ARGS="-DHDF5_C_INCLUDE_DIR=$root/usr/include/hdf5/serial -DHDF5_C_LIBRARY_hdf5=$ml/hdf5/serial/libhdf5.so -DSTB_INCLUDE_DIR=$root/usr/include/stb"
    # lib/ holds the three libraries the build links (always the carried ones: they match the
    # carried headers) and, beyond those, only the sonames the machine's loader cannot find,
    # repeating until ldd finds everything (a carried library can need another missing one).
    mkdir -p "$lib"
    ln -sf "$ml/libhdf5_serial.so.103" "$ml/libfmt.so.9" "$ml/libutf8proc.so.2" "$lib/"
    export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    local round so src missing
    for round in 1 2 3 4 5 6; do
      missing=$(ldd "$ml/libhdf5_serial.so.103" "$ml/libfmt.so.9" "$ml/libutf8proc.so.2" 2>/dev/null |
                awk '/not found/{print $1}' | sort -u)
      [ -z "$missing" ] && break
      for so in $missing; do
        src=$(find "$root" -name "$so" \( -type f -o -type l \) | head -1)
        [ -n "$src" ] || { echo "gpu_deps: $so is needed by the carried libraries but not carried" >&2; return 1; }
        ln -sf "$src" "$lib/$so"
      done
    done
    [ -z "$missing" ] || { echo "gpu_deps: still missing after 6 rounds: $missing" >&2; return 1; }
    echo "gpu_deps: build libraries from $root; $(ls "$lib" | wc -l) runtime libraries linked in $lib"
  else
    echo "gpu_deps: the machine has the build's headers; carried packages not used"
  fi
  if [ -d "$dir/cudnn/include" ] && ! echo "#include <cudnn_graph.h>" |
       "$cxx" -I/usr/local/cuda/include -E -x c++ - >/dev/null 2>&1; then
    export CPATH=${CPATH:+$CPATH:}$dir/cudnn/include
    echo "gpu_deps: cuDNN graph headers from $dir/cudnn/include"
  fi
  local py=${LIBRAMIL_PYTHON:-$(command -v python3)}
  if ! "$py" -c "import ot" 2>/dev/null; then
    if ls "$dir"/whl/*.whl >/dev/null 2>&1; then
      "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$dir/site" "$dir"/whl/*.whl >/dev/null 2>&1 ||
        echo "gpu_deps: pip could not install the carried wheels into $dir/site" >&2
      export PYTHONPATH=$dir/site${PYTHONPATH:+:$PYTHONPATH}
      "$py" -c "import ot" 2>/dev/null && echo "gpu_deps: POT from the carried wheel" ||
        echo "gpu_deps: import ot still fails (the Sinkhorn fixtures will fail)" >&2
    fi
  fi
  [ -d "$dir/shared/data" ] && export LIBRAMIL_SHARED_DIR=$dir/shared
  [ -f "$dir/minilm/config.json" ] && export LIBRAMIL_MINILM_DIR=$dir/minilm
  return 0
}

case "${1:-}" in
  fetch) gpu_deps_fetch ;;
  activate) gpu_deps_activate ;;
  *) echo "usage: bash tools/gpu_deps.sh fetch | source tools/gpu_deps.sh activate" >&2
     [ "${BASH_SOURCE[0]}" = "$0" ] && exit 2 || return 2 ;;
esac
