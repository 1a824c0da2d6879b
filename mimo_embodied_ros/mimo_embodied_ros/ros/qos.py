"""QoS profiles by name, so they can be chosen from parameters."""

from __future__ import annotations

from rclpy.qos import QoSProfile, qos_profile_sensor_data, qos_profile_system_default

PROFILES: dict[str, QoSProfile] = {
    "sensor_data": qos_profile_sensor_data,  # best effort, keep last 5: what camera drivers use
    "reliable": qos_profile_system_default,
}


def qos_by_name(name: str) -> QoSProfile:
    """The named profile; ValueError listing the names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        choices = ", ".join(PROFILES)
        raise ValueError(f"unknown QoS profile '{name}' (use one of: {choices})") from None
