"""Builds a backend from its kind and the node's parameters (without the kind prefix)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from mimo_embodied_ros.backends.base import VisionLanguageBackend

BACKEND_KINDS = ("transformers", "openai", "scripted")


def _backend_class(kind: str) -> Callable[..., VisionLanguageBackend]:
    # Imported on demand: the transformers backend pulls in torch, which the others do not need.
    if kind == "transformers":
        from mimo_embodied_ros.backends.transformers_backend import TransformersBackend

        return TransformersBackend
    if kind == "openai":
        from mimo_embodied_ros.backends.openai_backend import OpenAIBackend

        return OpenAIBackend
    if kind == "scripted":
        from mimo_embodied_ros.backends.scripted import ScriptedBackend

        return ScriptedBackend
    raise ValueError(f"unknown backend kind {kind!r}; expected one of {', '.join(BACKEND_KINDS)}")


def create_backend(kind: str, settings: Mapping[str, Any]) -> VisionLanguageBackend:
    """A backend of the given kind; unknown settings keys are a ValueError naming the valid ones.

    Raises BackendError (kind "load") when the backend itself cannot start.
    """
    backend_class = _backend_class(kind)
    parameters = inspect.signature(backend_class).parameters
    unknown = sorted(set(settings) - set(parameters))
    if unknown:
        raise ValueError(
            f"unknown settings for the {kind} backend: {', '.join(unknown)}; "
            f"valid: {', '.join(parameters)}"
        )
    missing = sorted(
        name
        for name, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty and name not in settings
    )
    if missing:
        raise ValueError(f"the {kind} backend needs the settings: {', '.join(missing)}")
    return backend_class(**dict(settings))
