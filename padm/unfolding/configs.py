"""Serialisation and bounds shared by every typed config of the unfolding networks and their tasks.

A config's fields are declared with :func:`integer`, :func:`number`, :func:`flag` and :func:`choice`,
which give each field its type and bounds once: the validator enforces them (for presets, command-line
overrides and configs read from checkpoints alike) and :meth:`ConfigMixin.bounds` lists them.  The
bounds keep a network that a file describes buildable and of a size a machine can hold; whether the
whole network is small enough is checked from its parameter count before it is built
(:func:`padm.engine.checkpoint.check_model_size`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import attrs


@attrs.frozen
class _Bounds:
    """Validator: an int (or, with ``real``, any finite number) in ``lo..hi``; optionally odd or None."""

    lo: float
    hi: float
    real: bool = False
    odd: bool = False
    optional: bool = False

    def describe(self) -> str:
        if self.real:
            return f"a number in [{self.lo:g}, {self.hi:g}]"
        return f"an {'odd ' if self.odd else ''}integer in {self.lo}..{self.hi}"

    def __call__(self, _inst, attribute, value) -> None:
        if value is None and self.optional:
            return
        kind = Real if self.real else Integral
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if ok and self.real:
            ok = math.isfinite(value)
        if ok:
            ok = self.lo <= value <= self.hi and (not self.odd or value % 2 == 1)
        if not ok:
            none = " (or empty)" if self.optional else ""
            raise ValueError(f"{attribute.name} must be {self.describe()}{none}, got {value!r}")


def _flag(_inst, attribute, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be true or false, got {value!r}")


@attrs.frozen
class _Choice:
    options: tuple[str, ...]

    def __call__(self, _inst, attribute, value) -> None:
        if value not in self.options or not isinstance(value, str):
            raise ValueError(f"{attribute.name} must be one of {', '.join(map(repr, self.options))}, got {value!r}")


def integer(default: int | None, lo: int, hi: int, *, odd: bool = False, optional: bool = False):
    """An ``int`` field in ``lo..hi`` (inclusive); ``odd``: odd values only; ``optional``: or None."""
    check = _Bounds(lo, hi, odd=odd, optional=optional)
    return attrs.field(default=default, validator=check, metadata={"bounds": (lo, hi)})


def number(default: float | None, lo: float, hi: float, *, optional: bool = False):
    """A finite ``float`` field in ``[lo, hi]`` (an int is accepted too); ``optional``: or None."""
    check = _Bounds(lo, hi, real=True, optional=optional)
    return attrs.field(default=default, validator=check, metadata={"bounds": (lo, hi)})


def flag(default: bool):
    """A ``bool`` field (``1`` or ``"yes"`` are refused: files are typed)."""
    return attrs.field(default=default, validator=_flag)


def choice(default: str, options: Sequence[str]):
    """A ``str`` field with one of ``options``."""
    return attrs.field(default=default, validator=_Choice(tuple(options)), metadata={"choices": tuple(options)})


class ConfigMixin:
    """Serialisation shared by typed configs: ``to_dict``/``from_dict`` (unknown keys rejected, legacy
    keys ignored, every malformed field named), named presets, the fields a checkpoint need not match,
    and the bounds of the fields."""

    PRESETS: ClassVar[Mapping[str, Any]] = {}
    LEGACY_FIELDS: ClassVar[tuple[str, ...]] = ()  # keys older files hold that mean nothing now
    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ()  # fields that change no weight shape or value

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """The config ``data`` holds; a ``ValueError`` names every unknown or malformed field at once."""
        data = {k: v for k, v in dict(data).items() if k not in cls.LEGACY_FIELDS}
        fields = attrs.fields_dict(cls)
        unknown = sorted(set(data) - set(fields), key=str)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(map(str, unknown))}")
        problems = []
        for name, value in data.items():
            check = fields[name].validator
            if check is not None:
                try:
                    check(None, fields[name], value)
                except (TypeError, ValueError) as err:
                    problems.append(str(err))
        if problems:
            raise ValueError("; ".join(problems))
        return cls(**data)

    @classmethod
    def preset(cls, name: str, **overrides: Any):
        try:
            base = cls.PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(cls.PRESETS)}") from None
        overrides = {k: v for k, v in overrides.items() if k not in cls.LEGACY_FIELDS}
        return attrs.evolve(base, **overrides)

    @classmethod
    def bounds(cls) -> dict[str, tuple[float, float]]:
        """``{field: (lowest, highest)}`` of every numeric field, as declared."""
        return {f.name: f.metadata["bounds"] for f in attrs.fields(cls) if "bounds" in f.metadata}

    def is_preset(self) -> bool:
        """Whether this config is one of its presets (up to :attr:`RUNTIME_FIELDS`)."""
        mine = {k: v for k, v in self.to_dict().items() if k not in self.RUNTIME_FIELDS}
        return any(mine == {k: v for k, v in p.to_dict().items() if k not in self.RUNTIME_FIELDS}
                   for p in self.PRESETS.values())


__all__ = ["ConfigMixin", "integer", "number", "flag", "choice"]
