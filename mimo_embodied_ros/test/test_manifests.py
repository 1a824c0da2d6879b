"""package.xml files declare every package their code imports (optional ones included)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON_KEYS = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml",
               "scipy": "python3-scipy", "PIL": "python3-pil"}
FROM_PYPI = {"torch", "torchvision", "transformers", "open3d", "rosbags", "mujoco", "mcap",
             "numba"}
OWN = {"mimo_embodied_ros", "mimo_embodied_sim", "mimo_embodied_msgs"}


def imported_top_level(package_dir: Path) -> set[str]:
    names: set[str] = set()
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize("package", ["mimo_embodied_ros", "mimo_embodied_sim"])
def test_every_import_is_declared(package):
    manifest = (REPO / package / "package.xml").read_text()
    for name in sorted(imported_top_level(REPO / package / package)):
        if name == package:
            continue
        if name in FROM_PYPI:
            assert name in manifest, f"{package}/package.xml should say where {name} comes from"
            continue
        key = PYTHON_KEYS.get(name, name)
        assert f"<exec_depend>{key}</exec_depend>" in manifest or \
            (name in OWN and f"<exec_depend>{name}</exec_depend>" in manifest), \
            f"{package} imports {name} but package.xml does not declare {key}"
