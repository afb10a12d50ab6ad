"""Data: image IO, dataset layouts, HDF5 packing, paired datasets, rain synthesis.

Modules: :mod:`~padm.data.images` (read/write, float/tensor conversion), :mod:`~padm.data.layouts`
(:func:`find_pairs`), :mod:`~padm.data.h5` (the packed format), :mod:`~padm.data.pack`,
:mod:`~padm.data.datasets` (:func:`open_paired` and the dataset classes), :mod:`~padm.data.synth`.
The names below are importable from ``padm.data`` directly; modules load on first use, so
``import padm.data`` stays cheap (no torch, no h5py).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Image": "images", "read_image": "images", "write_image": "images", "to_float": "images",
    "from_float": "images", "to_tensor": "images", "to_pixels": "images", "IMAGE_SUFFIXES": "images",
    "Pair": "layouts", "PairList": "layouts", "find_pairs": "layouts", "load_pair": "layouts",
    "PairsFile": "h5",  # (the pack function: padm.data.pack.pack; the submodule has the same name)
    "PairedPatchDataset": "datasets", "FolderPatchDataset": "datasets", "FullImageDataset": "datasets",
    "open_paired": "datasets", "CleanPatchDataset": "datasets", "CleanImageDataset": "datasets",
    "open_clean": "datasets",
    "SynthConfig": "synth", "synthesize": "synth", "synth_folder": "synth",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'padm.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"padm.data.{module}"), name)
    globals()[name] = value
    return value
