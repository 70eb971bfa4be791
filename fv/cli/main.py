"""The `fv` command. Each sub-command is thin: parse, build a config, call one library function."""

from __future__ import annotations

import sys

import typer

from fv.cli import common

app = typer.Typer(help="fv: emotion-driven facial video generation (neutral -> emotion -> neutral).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _register() -> None:
    from fv.cli import data, train  # noqa: F401 - each module adds its commands to `app`
    for name in ("demo", "sample", "render", "export", "evaluate", "bench"):
        try:
            __import__(f"fv.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"fv.cli.{name}":
                raise


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
