"""Serialisation shared by every typed config of the unfolding networks and their tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs


class ConfigMixin:
    """Serialisation shared by typed configs: ``to_dict``/``from_dict`` (unknown keys rejected, legacy
    keys ignored), named presets, and the fields a checkpoint need not match."""

    PRESETS: ClassVar[Mapping[str, Any]] = {}
    LEGACY_FIELDS: ClassVar[tuple[str, ...]] = ()  # keys older files hold that mean nothing now
    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ()  # fields that change no weight shape or value

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        data = {k: v for k, v in dict(data).items() if k not in cls.LEGACY_FIELDS}
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def preset(cls, name: str, **overrides: Any):
        try:
            base = cls.PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(cls.PRESETS)}") from None
        overrides = {k: v for k, v in overrides.items() if k not in cls.LEGACY_FIELDS}
        return attrs.evolve(base, **overrides)


__all__ = ["ConfigMixin"]
