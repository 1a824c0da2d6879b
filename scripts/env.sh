# Source after scripts/setup.sh: the venv, the colcon install space, and loopback-only DDS.
# Usage: source scripts/env.sh [ROS_DOMAIN_ID]
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "${VENV:-$_root/.venv}/bin/activate"
# colcon's setup scripts read unset variables; relax nounset while sourcing them.
_nounset=$([[ $- == *u* ]] && echo 1 || true); set +u
# shellcheck disable=SC1091
source "$_root/install/setup.bash"
[ -n "$_nounset" ] && set -u
# DDS discovery stays on this machine; each job gets its own domain (../shared/environment.md).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${1:-${ROS_DOMAIN_ID:-42}}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONPATH="$_root/mimo_embodied_ros:$_root/mimo_embodied_sim${PYTHONPATH:+:$PYTHONPATH}"
# Full-size RGB-D over shared memory: Fast DDS 2.x (Humble, Jazzy) reads this name (Fast DDS 3:
# FASTDDS_DEFAULT_PROFILES_FILE). Without it its 512 kB segment loses most 640x480+ frames.
export FASTRTPS_DEFAULT_PROFILES_FILE="${FASTRTPS_DEFAULT_PROFILES_FILE:-$_root/mimo_embodied_ros/config/fastdds_large_images.xml}"
unset _root _nounset
