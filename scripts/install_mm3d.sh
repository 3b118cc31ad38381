#!/usr/bin/env bash
# Install the `mm3d` extra (mmengine 0.10.7, mmcv 2.1.0 with CPU ops, mmdet 3.2.0, mmdet3d 1.4.0)
# into a virtual environment, without ever touching its torch.
#
# Usage:  bash scripts/install_mm3d.sh [VENV]          (default VENV: .venv)
#
# * Idempotent: if mmdet3d already imports in VENV with mmcv's compiled ops, it exits at once.
# * mmcv has no CPU wheel for recent torch, so it is built from source once (about 10 minutes on
#   2 cores) into ${CURATE_WHEEL_CACHE:-$HOME/.cache/curate/wheels} and reused by every later
#   install (a fresh clone, CI) on the same machine.
# * The build needs setuptools<81 (mmcv's setup.py imports pkg_resources). It is installed into a
#   private directory put first on PYTHONPATH for the build only, so VENV keeps its own setuptools.
# * Every package is installed with --no-deps and its runtime dependencies are listed explicitly,
#   so pip can never replace the CPU torch (or numpy) with something else.
set -euo pipefail

VENV="$(cd "${1:-.venv}" 2>/dev/null && pwd || echo "${1:-.venv}")"
PY="$VENV/bin/python"
CACHE="${CURATE_WHEEL_CACHE:-$HOME/.cache/curate/wheels}"
MMCV_VERSION="2.1.0"
PIP=("$PY" -m pip --disable-pip-version-check)

if [ ! -x "$PY" ]; then
    echo "install_mm3d: no python at $PY; create the venv first (make install)" >&2
    exit 2
fi

check() {
    "$PY" - <<'PYEOF' 2>/dev/null
import mmengine, mmcv, mmdet, mmdet3d
from mmcv.ops import nms, Voxelization, nms_rotated  # compiled ops present
from mmdet3d.apis import init_model  # full import chain
assert mmcv.__version__ == "2.1.0" and mmdet3d.__version__ == "1.4.0"
PYEOF
}

if check; then
    echo "install_mm3d: mmdet3d stack already installed in $VENV"
    exit 0
fi

TORCH_BEFORE="$("$PY" -c 'import torch; print(torch.__version__)')"
mkdir -p "$CACHE"
PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
TORCHTAG="$(echo "$TORCH_BEFORE" | tr -c 'a-zA-Z0-9.\n' '_')"
# a wheel built against one torch does not load under another: key the cache by torch version
WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch$TORCHTAG-$PYTAG"
mkdir -p "$WHEEL_DIR"
WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"

if [ -z "$WHEEL" ]; then
    echo "install_mm3d: building mmcv $MMCV_VERSION with CPU ops (with a precompiled torch header: about 10 minutes on 2 cores)..."
    BUILD_DIR="$(mktemp -d "${TMPDIR:-/tmp}/curate-mmcv-build.XXXXXX")"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    "${PIP[@]}" install --quiet --target "$BUILD_DIR/site" "setuptools>=77,<81" "wheel" "packaging"
    # build-time imports of mmcv's setup.py that must come from VENV: torch, numpy
    "${PIP[@]}" install --quiet --no-deps "ninja" "pyyaml" "addict" "yapf" 2>/dev/null || true
    # Every one of mmcv's 77 C++ files re-parses the torch headers (about 3 minutes each on 2 busy
    # cores). A gcc precompiled header of those headers, forced into each file with -include, and
    # no debug info, bring a file down to about 12 s: the whole build takes minutes, not hours.
    PYTHONPATH="$BUILD_DIR/site" "${PIP[@]}" download --quiet --no-deps --no-build-isolation --no-binary :all: -d "$BUILD_DIR/sdist" "mmcv==$MMCV_VERSION"
    tar -xzf "$BUILD_DIR"/sdist/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD_DIR"
    SRC="$BUILD_DIR/mmcv-$MMCV_VERSION"
    PCH="$BUILD_DIR/pch/mmcv_pch.hpp"
    mkdir -p "$BUILD_DIR/pch"
    printf '#include <cassert>\n#include <functional>\n#include <map>\n#include <type_traits>\n#include <vector>\n#include <torch/types.h>\n#include <ATen/ATen.h>\n' > "$PCH"
    EXTRA_CFLAGS="-g0 -O2"
    # the exact flags torch's BuildExtension gives each file (python's CFLAGS + CCSHARED + $CFLAGS,
    # the include dirs, then mmcv's post flags): a precompiled header is used only when they match
    read -r -a PCH_FLAGS <<< "$(PYTHONPATH="$BUILD_DIR/site" "$PY" - "$SRC" "$EXTRA_CFLAGS" <<'PYEOF'
import sys, sysconfig
from torch.utils.cpp_extension import include_paths
src, extra = sys.argv[1], sys.argv[2]
flags = [sysconfig.get_config_var("CFLAGS"), sysconfig.get_config_var("CCSHARED"), extra]
incs = [f"{src}/mmcv/ops/csrc/common"] + include_paths() + [sysconfig.get_paths()["include"]]
post = "-std=c++17 -DTORCH_API_INCLUDE_EXTENSION_H -DTORCH_EXTENSION_NAME=_ext"
print(" ".join(flags + ["-I" + i for i in incs] + [post]))
PYEOF
)"
    c++ -x c++-header "${PCH_FLAGS[@]}" "$PCH" -o "$PCH.gch"
    (cd "$SRC" && PYTHONPATH="$BUILD_DIR/site" MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
        CFLAGS="$EXTRA_CFLAGS -Winvalid-pch -include $PCH" \
        "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$BUILD_DIR/out" .)
    mv "$BUILD_DIR"/out/mmcv-"$MMCV_VERSION"-*.whl "$WHEEL_DIR"/
    WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl | head -n1)"
    echo "install_mm3d: cached $WHEEL"
else
    echo "install_mm3d: reusing cached $WHEEL"
fi

# runtime dependencies, listed explicitly (no resolver run over torch / numpy)
# Runtime dependencies of mmengine / mmdet / mmdet3d / nuscenes-devkit, pinned to the versions
# tested with torch 2.13 CPU and numpy 2.4 (mmdet3d's own pins would pull numpy<2 and a CUDA torch).
"${PIP[@]}" install --quiet \
    "addict==2.4.0" "yapf==0.43.0" "termcolor==3.3.0" "rich==15.0.0" "pyyaml==6.0.3" \
    "regex==2026.11.15" "opencv-python-headless==5.0.0.93" "shapely==2.2.0" "six==1.17.0" \
    "terminaltables==3.1.10" "pycocotools==2.0.11" "scipy==1.17.1" "matplotlib==3.11.2" \
    "tqdm==4.70.1" "numba==0.68.1" "plyfile==1.1.5" "scikit-image==0.26.0" "trimesh==5.2.0" \
    "networkx==3.6.1" "pyquaternion==0.9.9" "descartes==1.1.0" "fire==0.7.1" \
    "motmetrics==1.4.0" "cachetools==8.0.1" "pandas==3.1.1"
"${PIP[@]}" install --quiet --no-deps \
    "mmengine==0.10.7" "$WHEEL" "mmdet==3.2.0" "mmdet3d==1.4.0" \
    "nuscenes-devkit==1.2.0" "lyft_dataset_sdk==0.0.8"

TORCH_AFTER="$("$PY" -c 'import torch; print(torch.__version__)')"
if [ "$TORCH_BEFORE" != "$TORCH_AFTER" ]; then
    echo "install_mm3d: torch changed from $TORCH_BEFORE to $TORCH_AFTER; reinstall torch $TORCH_BEFORE" >&2
    exit 1
fi
if ! check; then
    echo "install_mm3d: mmdet3d stack installed but does not import; run:" >&2
    echo "  $PY -c 'from mmdet3d.apis import init_model'" >&2
    exit 1
fi
echo "install_mm3d: done (mmengine 0.10.7, mmcv $MMCV_VERSION, mmdet 3.2.0, mmdet3d 1.4.0)"
