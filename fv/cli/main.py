"""The `fv` command. Each sub-command is thin: parse, build a config, call one library function."""

from __future__ import annotations

import importlib
import sys

import typer

from fv.cli import common

app = typer.Typer(help="fv: emotion-driven facial video generation (neutral -> emotion -> neutral).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _register() -> None:
    for name in ("data", "train", "demo", "render", "export", "evaluate", "bench"):  # the order of `fv --help`
        importlib.import_module(f"fv.cli.{name}")  # each module adds its commands to `app`


def main() -> int:
    _register()
    try:
        app(standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0)
    except common.user_errors() as e:
        common.fail(e)
        return 2
    return 0


if __name__ == "__main__":
    # `python -m fv.cli.main`: run the imported module's app, the one the commands register on.
    from fv.cli.main import main as _main
    sys.exit(_main())
