"""The one validation layer of the command line (STYLE practice 17): what a valid number is, per option name.

`install(app)` wraps every command of the typer app, so each command's numbers are checked after parsing and
before its body runs: nothing is loaded, computed or written for a bad value. A
float option must be finite; every int and float option must have a rule here (tests/cli/test_bad_inputs.py
walks the commands), so a new option cannot skip the check. Values that are not numbers (paths, names, the
"ddim50" form of render's --steps) are parsed by their own readers.
"""

from __future__ import annotations

import functools
import math
import typing
from dataclasses import dataclass


class OptionError(ValueError):
    """A command-line number outside its range (reported as one line, exit code 2)."""


@dataclass(frozen=True)
class Rule:
    lo: float | None = None        # smallest allowed value (inclusive unless lo_open)
    hi: float | None = None        # largest allowed value (inclusive)
    lo_open: bool = False          # the value must be strictly greater than lo
    choices: tuple = ()            # the only values allowed, when given

    def problem(self, v: float) -> str | None:
        """Why `v` breaks the rule, or None."""
        if isinstance(v, float) and not math.isfinite(v):
            return "must be a finite number"
        if self.choices:
            return None if v in self.choices else "must be one of " + ", ".join(map(str, self.choices))
        low = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        if low or (self.hi is not None and v > self.hi):
            return "must be " + self.describe()
        return None

    def describe(self) -> str:
        lo = None if self.lo is None else f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        hi = None if self.hi is None else f"<= {_num(self.hi)}"
        return " and ".join(s for s in (lo, hi) if s)


SEED = Rule(0, 2 ** 63 - 1)
COUNT = Rule(1, 1_000_000)          # something that happens at least once
COUNT0 = Rule(0, 1_000_000)         # ... or possibly never (0: off, or nothing this time)

# option name (as the command's parameter) -> its rule; the same name means the same thing in every command
RULES: dict[str, Rule] = {
    "seed": SEED,
    "fps": Rule(0, 120, lo_open=True),
    "guidance": Rule(0, 100),                      # classifier-free guidance scale (1 = off)
    "eta": Rule(0, 1),                             # DDIM eta: 0 deterministic, 1 DDPM-like
    "ref_strength": Rule(0, 1, lo_open=True),      # fraction of the schedule the neutral face is noised to
    "steps": Rule(1, 10_000_000),                  # train's budget, bench's sampling steps (int forms only)
    "batch_size": Rule(1, 65_536),
    "lr": Rule(0, 1, lo_open=True),
    "ckpt_every": COUNT,
    "sample_every": COUNT0,
    "repeats": Rule(1, 1000),
    "max_videos": COUNT0,
    "max_frames_per_call": Rule(1, 1_000_000),
    "videos": Rule(1, 10_000),
    "identities": Rule(2, 100_000),
    "test_identities": Rule(1, 100_000),
    "takes": Rule(1, 1000),
    "version": Rule(choices=(1, 2)),
    "baseline_steps": COUNT0,
    "dm_steps": COUNT0,
    "lfdm_steps": COUNT0,
    "faces": COUNT,
    "sample_steps": COUNT,
    "gpus": Rule(1, 4096),
}

# (smaller, larger, why): relations between two options of one command
RELATIONS = (("test_identities", "identities", "leaves no identity to train on"),)


def check(params: dict) -> None:
    """Raise OptionError for the first option of `params` (name -> parsed value) that breaks its rule."""
    for name, value in params.items():
        rule = RULES.get(name)
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            why = (rule or Rule()).problem(v)
            if why:
                raise OptionError(f"{flag(name)} {why}, got {_num(v)}")
    for small, big, why in RELATIONS:
        a, b = params.get(small), params.get(big)
        if a is not None and b is not None and a >= b:
            raise OptionError(f"{flag(small)} {a} must be smaller than {flag(big)} {b}: it {why}")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _num(v: float) -> str:
    return str(int(v)) if math.isfinite(v) and float(v).is_integer() else f"{v:g}"


def numeric_params(app):
    """(command name, parameter name) of every int or float parameter (also Optional/List of one) of `app`."""
    for name, info in _commands(app, ""):
        hints = typing.get_type_hints(getattr(info.callback, "__wrapped__", info.callback))
        for param, hint in hints.items():
            if param != "return" and _numeric(hint):
                yield name, param


def install(app):
    """Make every command of the typer `app` (sub-apps included) call check() on its parsed parameters
    before its body runs."""
    for _, info in _commands(app, ""):
        if not getattr(info.callback, "_fv_checked", False):
            info.callback = _checked(info.callback)
    return app


def _checked(callback):
    @functools.wraps(callback)   # typer reads the parameters through __wrapped__
    def run(**params):
        check(params)
        return callback(**params)
    run._fv_checked = True
    return run


def _commands(app, prefix: str):
    for info in app.registered_commands:
        yield (prefix + " " + (info.name or info.callback.__name__.replace("_", "-"))).strip(), info
    for group in app.registered_groups:
        yield from _commands(group.typer_instance, (prefix + " " + (group.name or "")).strip())


def _numeric(hint) -> bool:
    if hint in (int, float):
        return True
    return any(_numeric(a) for a in typing.get_args(hint) if a is not type(None))
