"""Every field of every task's configs is typed and bounded, once, where it is declared."""

from __future__ import annotations

import attrs
import pytest

from padm.unfolding.tasks import TASKS, get_task


def _config_classes():
    for name in TASKS:
        task = get_task(name)
        yield f"{name}.network", task.config_cls
        yield f"{name}.degradation", task.degradation_cls


@pytest.mark.parametrize("label,cls", list(_config_classes()), ids=[label for label, _ in _config_classes()])
def test_every_field_has_a_validator_and_the_presets_are_within_bounds(label, cls):
    for field in attrs.fields(cls):
        assert field.validator is not None, f"{label}: field {field.name} is not checked"
    for name, preset in cls.PRESETS.items():
        assert cls.from_dict(preset.to_dict()) == preset, name
    defaults = cls.PRESETS or {"default": cls()}
    for preset in defaults.values():
        for field, (lo, hi) in cls.bounds().items():
            value = getattr(preset, field)
            assert value is None or lo <= value <= hi, (label, field, value)


@pytest.mark.parametrize("name", list(TASKS))
def test_the_size_fields_of_each_network_are_bounded(name):
    bounds = get_task(name).config_cls.bounds()
    for field in ("in_channels", "n_feat", "stages", "depth", "d_state"):
        lo, hi = bounds[field]
        assert 0 <= lo <= hi <= 512, (field, lo, hi)
    if "kernel_size" in bounds:
        assert bounds["kernel_size"][1] <= 15


def test_a_bad_value_is_refused_by_type_and_range_and_all_at_once():
    from padm.unfolding.tasks.derain.config import PADMConfig

    with pytest.raises(ValueError, match="n_feat must be an integer in 1..512, got True"):
        PADMConfig(n_feat=True)
    with pytest.raises(ValueError, match=r"ffn_expansion must be a number in \[0.5, 16\], got inf"):
        PADMConfig(ffn_expansion=float("inf"))
    with pytest.raises(ValueError, match="pad_multiple must be a multiple of 2 \\*\\* \\(depth - 1\\) = 4, got 6"):
        PADMConfig(depth=3, pad_multiple=6)
    with pytest.raises(ValueError, match="dropout_step x \\(depth - 1\\) must be at most 1"):
        PADMConfig(depth=6, dropout_step=0.5)
    with pytest.raises(ValueError) as err:
        PADMConfig.from_dict({"n_feat": 0, "step": "fast"})
    assert str(err.value) == "n_feat must be an integer in 1..512, got 0; step must be one of 'pixel', 'scalar', got 'fast'"
    assert PADMConfig(pad_multiple=None).padding_multiple == 4 and PADMConfig(n_feat=16).n_feat == 16
