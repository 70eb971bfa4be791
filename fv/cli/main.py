"""The `fv` command. Each sub-command is thin: parse, build a config, call one library function."""

from __future__ import annotations

import sys

from fv.cli import common
from fv.cli.app import app


def _register() -> None:
    # each module adds its commands to `app` (fv.cli.app) when imported, in the order of `fv --help`
    from fv.cli import data, train, demo, render, export, evaluate, bench  # noqa: F401, I001
    from fv.cli import reproduce  # noqa: F401
    from fv.cli import validate
    validate.install(app)   # every command's numbers are checked before it runs


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
