"""Rewrite the ROS wheels' CMake exports to this machine's Python and NumPy include paths.

The ros-jazzy-* wheels were built in a manylinux container; their exported targets name
/opt/python/cp311-cp311/... include folders, which CMake rejects at generate time under colcon.
Idempotent: files already rewritten contain no foreign path.
"""

import sys
import sysconfig
from pathlib import Path

import numpy

FOREIGN_TO_LOCAL = {
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
    "/opt/python/cp311-cp311/include/python3.11": sysconfig.get_paths()["include"],
}


def main() -> int:
    share = Path(sys.prefix) / "share"
    changed = 0
    for path in share.glob("**/cmake/*.cmake"):
        text = path.read_text(errors="surrogateescape")
        new = text
        for foreign, local in FOREIGN_TO_LOCAL.items():
            new = new.replace(foreign, local)
        if new != text:
            path.write_text(new, errors="surrogateescape")
            changed += 1
    print(f"fix_ros_wheel_cmake: rewrote {changed} CMake files under {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
