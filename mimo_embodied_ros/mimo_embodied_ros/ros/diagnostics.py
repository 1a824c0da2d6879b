"""A /diagnostics status from plain values: every value made safe for a ROS string."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from mimo_embodied_ros.core.text import safe_text


def diagnostics_msg(name: str, values: dict[str, str], warn: bool, message: str,
                    stamp: Time) -> DiagnosticArray:
    """One DiagnosticStatus (OK, or WARN when ``warn``) with ``values`` as key/value pairs;
    ``hardware_id`` is ``values["model_id"]`` when there is one."""
    safe = {key: safe_text(value) for key, value in values.items()}
    status = DiagnosticStatus(
        level=DiagnosticStatus.WARN if warn else DiagnosticStatus.OK, name=safe_text(name),
        hardware_id=safe.get("model_id", ""), message=safe_text(message),
        values=[KeyValue(key=k, value=v) for k, v in safe.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
