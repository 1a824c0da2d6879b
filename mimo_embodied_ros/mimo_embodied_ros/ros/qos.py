"""QoS profiles by name, so they can be chosen from parameters."""

from __future__ import annotations

from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

PROFILES: dict[str, QoSProfile] = {
    "sensor_data": qos_profile_sensor_data,  # best effort, keep last 5: what camera drivers use
    # Explicitly reliable: the "system default" profile leaves it to the middleware, and Fast DDS
    # then reports best effort.
    "reliable": QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                           reliability=ReliabilityPolicy.RELIABLE),
}


def qos_by_name(name: str) -> QoSProfile:
    """The named profile; ValueError listing the names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        choices = ", ".join(PROFILES)
        raise ValueError(f"unknown QoS profile '{name}' (use one of: {choices})") from None
