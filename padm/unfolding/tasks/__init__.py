"""Restoration tasks on the task-free unfolding core: one sub-package each.

======== ============================================= =========================================
name     degradation                                    network
======== ============================================= =========================================
derain   I = B + R, pairs from disk                     PADM (:mod:`.derain`)
deblur   y = k ⊛ x + n, clean images blurred on the fly :class:`~padm.unfolding.image_net.ImageUnfolding`, A = k ⊛ ·
denoise  y = x + n, n ~ N(0, σ²), on the fly            :class:`~padm.unfolding.image_net.ImageUnfolding`, A = Id
======== ============================================= =========================================

:func:`get_task` returns a task by name; :func:`task_of` the task a network config belongs to.  Tasks
load on first use, so naming one imports only its own package.  A task of your own (``docs/tasks.md``)
is a :class:`~padm.unfolding.tasks.base.Task` subclass in any importable module; name it by its path,
``padm train --task mypackage.tasks:Dehaze``, or :func:`register` a short name for it.  Its ``name``
attribute must be the name it is found by (checkpoints store it).
"""

from __future__ import annotations

import importlib
from typing import Any

from padm.unfolding.tasks.base import Sample, StageMap, Task

# name -> "module:class"
TASKS: dict[str, str] = {
    "derain": "padm.unfolding.tasks.derain.task:DerainTask",
    "deblur": "padm.unfolding.tasks.deblur.task:DeblurTask",
    "denoise": "padm.unfolding.tasks.denoise.task:DenoiseTask",
}
DEFAULT_TASK = "derain"
_loaded: dict[str, Task] = {}


def register(name: str, target: str) -> None:
    """Make ``get_task(name)`` load ``target`` (``"module:Class"``)."""
    TASKS[name] = target
    _loaded.pop(name, None)


def get_task(name: str | Task) -> Task:
    """The task called ``name``: a registered name or a ``"module:Class"`` path (``ValueError`` otherwise)."""
    if isinstance(name, Task):
        return name
    if name not in _loaded:
        target = TASKS.get(name) or (name if ":" in str(name) else None)
        if target is None:
            raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)} or give module:Class")
        module, _, cls = target.partition(":")
        try:
            task_cls = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"task {name!r}: cannot load {target} ({err})") from None
        if not (isinstance(task_cls, type) and issubclass(task_cls, Task)):
            raise ValueError(f"task {name!r}: {target} is not a Task subclass")
        TASKS.setdefault(name, target)
        _loaded[name] = task_cls()
    return _loaded[name]


def task_of(config: Any) -> Task:
    """The task whose network config class ``config`` is an instance of (exact type)."""
    for name in TASKS:
        task = get_task(name)
        if type(config) is task.config_cls:
            return task
    raise ValueError(f"no task has network config {type(config).__name__}")


__all__ = ["TASKS", "DEFAULT_TASK", "register", "get_task", "task_of", "Task", "Sample", "StageMap"]
