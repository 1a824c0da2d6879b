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


def config_file(name: str, package: str = PACKAGE) -> Path:
    """``name`` as a path; a bare file name that is not in the working directory is looked up in
    the package's config/ (so graph files can name the files the package ships)."""
    path = Path(name).expanduser()
    if path.name == name and not path.is_file() and (config_dir(package) / name).is_file():
        return config_dir(package) / name
    return path


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


def node_parameters(config_file: Path, node_name: str | None = None) -> dict[str, Any]:
    """The flattened ros__parameters of a ROS 2 parameter file's section.

    The section is `node_name` (or `/node_name`, `/**`) when given and present, else the file's
    only section: a node's defaults never depend on the name it runs under (remapped with
    ``-r __node:=...``, or a second instance in a namespace).
    """
    document = yaml.safe_load(config_file.read_text()) or {}
    sections = {key: value for key, value in document.items() if isinstance(value, dict)}
    for key in (node_name, f"/{node_name}", "/**") if node_name else ("/**",):
        if key in sections:
            return flatten(sections[key].get("ros__parameters", {}))
    if len(sections) == 1:
        return flatten(next(iter(sections.values())).get("ros__parameters", {}))
    raise ValueError(f"{config_file} has sections {sorted(sections)}; name the one to use")


def declare_from_config(
    node: Node,
    descriptions: dict[str, str],
    config_file: str,
    package: str = PACKAGE,
    dynamic_numbers: bool = False,
    read_only: tuple[str, ...] = (),
) -> None:
    """Declare every described parameter with its default from <package>/config/<config_file>.

    dynamic_numbers lets numeric parameters take int or float (YAML "5" vs "5.0"); parameters in
    ``read_only`` refuse ``ros2 param set`` (they are read once at start-up).
    """
    defaults = node_parameters(config_dir(package) / config_file)  # not by the node's name
    missing = sorted(set(descriptions) - set(defaults))
    if missing:
        raise RuntimeError(f"{config_file} has no default for: {', '.join(missing)}")
    for name, description in descriptions.items():
        numeric = isinstance(defaults[name], int | float) and not isinstance(defaults[name], bool)
        descriptor = ParameterDescriptor(
            description=description, dynamic_typing=dynamic_numbers and numeric,
            read_only=name in read_only,
        )
        node.declare_parameter(name, defaults[name], descriptor)
