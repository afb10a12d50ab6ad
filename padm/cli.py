"""The ``padm`` command.

Sub-commands live beside the code they drive and are imported lazily, so ``padm --help`` is fast and a
broken optional dependency only affects its own command.
"""

from __future__ import annotations

import importlib
import sys

import click

from padm.errors import UserError

# name -> "module:attribute" of a click command
_COMMANDS = {
    "pack": "padm.data.cli:pack",
    "synth": "padm.data.cli:synth",
    "train": "padm.engine.cli:train",
    "eval": "padm.engine.cli:evaluate",
    "derain": "padm.engine.cli:derain",
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
        module, attr = target.split(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:  # command not built (yet): hide it, keep other errors loud
            if err.name == module:
                return None
            raise
        return getattr(mod, attr, None)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as err:  # a user mistake: one line, no traceback
            raise click.ClickException(str(err)) from None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="padm")
def main() -> None:
    """PADMamba deraining: pack data, train, evaluate, derain your photos."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
