#!/usr/bin/env bash
# Bootstraps everything `make demo` and `make test` need, idempotently:
#   1. a venv (.venv) with the pinned wheels of requirements.txt (PyTorch CPU, diffusers, ROS 2 wheels...)
#   2. this package's msg/ and action/ interfaces, built with CMake + rosidl into the venv prefix
#   3. the Python package itself, installed editable (console entry points: imagine_node, mask2iv-*)
# Each step is skipped when the inputs it depends on are unchanged (hash stamps in .venv/), so the
# second run takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

stamp_ok() { [ -f "$VENV/.$1.sha" ] && [ "$(cat "$VENV/.$1.sha")" = "$2" ]; }
# Hash of the tracked files under the given paths (never __pycache__ or other by-products).
hash_of() { "$ROOT/scripts/source_hash.sh" "$@"; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating venv $VENV"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

REQ_HASH=$(hash_of requirements.txt)
if ! stamp_ok requirements "$REQ_HASH"; then
  echo "[bootstrap] installing pinned wheels (requirements.txt)"
  python -m pip install -q --upgrade pip
  python -m pip install -q -r requirements.txt
  echo "$REQ_HASH" > "$VENV/.requirements.sha"
fi

# The ROS wheels' exported CMake targets name include paths of the machine that built them
# (/opt/python/cp311-cp311/...); CMake refuses to configure until those paths exist.
python scripts/wheel_include_links.py

IF_HASH=$(hash_of package.xml CMakeLists.txt msg action launch config scripts/imagine_node)
SITE=$(python -c "import site; print(site.getsitepackages()[0])")
if ! stamp_ok interfaces "$IF_HASH" || [ ! -d "$SITE/mask2iv_ros/msg" ]; then
  echo "[bootstrap] building interfaces (rosidl, CMake) into the venv"
  # CMake refuses exported include dirs inside its source dir, and the venv lives in the repo:
  # build from a copy of the package's build files.
  rm -rf .ros && mkdir -p .ros/src/mask2iv_ros
  cp -r package.xml CMakeLists.txt msg action launch config scripts .ros/src/mask2iv_ros/
  export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV:$SITE
  cmake -S .ros/src/mask2iv_ros -B .ros/build -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" -DMASK2IV_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF \
    > .ros/cmake.log 2>&1 && cmake --build .ros/build -j2 >> .ros/cmake.log 2>&1 \
    && cmake --install .ros/build >> .ros/cmake.log 2>&1 \
    || { tail -40 .ros/cmake.log; echo "[bootstrap] interface build failed (log: .ros/cmake.log)"; exit 1; }
  # The generated package dir becomes a namespace portion of the hand-written mask2iv_ros
  # (whose __init__ extends __path__); its own empty __init__ and egg-info would shadow it.
  rm -rf "$SITE/mask2iv_ros/__init__.py" "$SITE/mask2iv_ros/__pycache__" "$SITE"/mask2iv_ros-*.egg-info
  echo "$IF_HASH" > "$VENV/.interfaces.sha"
fi

PKG_HASH=$(hash_of setup.py)
if ! stamp_ok package "$PKG_HASH"; then
  echo "[bootstrap] installing mask2iv_ros (editable)"
  python -m pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
  echo "$PKG_HASH" > "$VENV/.package.sha"
fi
