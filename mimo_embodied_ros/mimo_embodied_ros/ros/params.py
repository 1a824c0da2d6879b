"""Parameter defaults live in the package's config/*.yaml; nodes declare them with descriptions.

Keeping defaults in YAML (not in code) means the file a launch file loads, the in-process runner
loads and the node falls back on are one and the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

PACKAGE = "mimo_embodied_ros"


def config_dir(package: str = PACKAGE) -> Path:
    """config/ of an installed package of this repository, or of its source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory(package)) / "config"
        if installed.is_dir():
            return installed
    except (ImportError, LookupError, ValueError):
        pass
    return Path(__file__).resolve().parents[3] / package / "config"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: ROS parameter names from nested YAML."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def node_parameters(config_file: Path, node_name: str) -> dict[str, Any]:
    """The flattened ros__parameters of `node_name` in a ROS 2 parameter file."""
    document = yaml.safe_load(config_file.read_text()) or {}
    section = document.get(node_name) or document.get(f"/{node_name}") or {}
    return flatten(section.get("ros__parameters", {}))


def declare_from_config(
    node: Node,
    descriptions: dict[str, str],
    config_file: str,
    package: str = PACKAGE,
    dynamic_numbers: bool = False,
) -> None:
    """Declare every described parameter with its default from <package>/config/<config_file>.

    dynamic_numbers lets numeric parameters take int or float (YAML "5" vs "5.0").
    """
    defaults = node_parameters(config_dir(package) / config_file, node.get_name())
    missing = sorted(set(descriptions) - set(defaults))
    if missing:
        raise RuntimeError(f"{config_file} has no default for: {', '.join(missing)}")
    for name, description in descriptions.items():
        numeric = isinstance(defaults[name], int | float) and not isinstance(defaults[name], bool)
        descriptor = ParameterDescriptor(
            description=description, dynamic_typing=dynamic_numbers and numeric
        )
        node.declare_parameter(name, defaults[name], descriptor)
