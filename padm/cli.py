"""The ``padm`` command.

Sub-commands live beside the code they drive and are imported lazily, so ``padm --help`` is fast and a
broken optional dependency only affects its own command.
"""

from __future__ import annotations

import importlib
import sys

import click

from padm.errors import UserError

# name -> "module:attribute" of a click command, or ("module:factory", its keyword arguments)
_COMMANDS = {
    "pack": "padm.data.cli:pack",
    "synth": "padm.data.cli:synth",
    "train": "padm.engine.cli:train",
    "eval": "padm.engine.cli:evaluate",
    "restore": "padm.engine.cli:restore",
    # the task alias of `padm restore`: refuses checkpoints of other tasks
    "derain": ("padm.engine.cli:restore_command", {"name": "derain", "task": "derain", "verb": "Derain"}),
    "explain": "padm.engine.explain:explain",
    "demo": "padm.engine.demo:demo",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name in _COMMANDS if self.get_command(ctx, name) is not None)

    def get_command(self, ctx, name):
        target = _COMMANDS.get(name)
        if target is None:
            return None
        target, kwargs = target if isinstance(target, tuple) else (target, None)
        module, attr = target.split(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:  # command not built (yet): hide it, keep other errors loud
            if err.name == module:
                return None
            raise
        found = getattr(mod, attr, None)
        return found(**kwargs) if kwargs is not None and found is not None else found

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as err:  # a user mistake: one line, no traceback
            raise click.ClickException(str(err)) from None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="padm")
def main() -> None:
    """PADMamba deraining and other restoration tasks: pack data, train, evaluate, restore your photos."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
