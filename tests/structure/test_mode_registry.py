"""A render mode is an object in one registry, fv.photo.modes.MODES, not a string tested in many places (STYLE
practice 18), read from the source with `ast`: outside the registry module, nothing in fv/ or benchmarks/ compares
a value with a registered mode's name (==, !=, in, not in, a match case, startswith / endswith, a table keyed by
mode names) or with the registry's default-mode constants."""

from __future__ import annotations

import ast
from pathlib import Path

from fv.photo.modes import MODES

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "fv" / "photo" / "modes.py"
CONSTANTS = {"DEFAULT_MODE", "DEFAULTS"}


def _names_in(node: ast.AST, names: set[str]) -> list[str]:
    """The mode names among the string constants of an operand (itself, or the items of a tuple, list or set)."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    found = [n.value for n in items if isinstance(n, ast.Constant) and n.value in names]
    found += [c for n in items for c in CONSTANTS
              if (isinstance(n, ast.Name) and n.id == c) or (isinstance(n, ast.Attribute) and n.attr == c)]
    return found


def _patterns(p: ast.pattern) -> list[ast.AST]:
    if isinstance(p, ast.MatchValue):
        return [p.value]
    if isinstance(p, ast.MatchOr):
        return [v for q in p.patterns for v in _patterns(q)]
    if isinstance(p, ast.MatchAs) and p.pattern is not None:
        return _patterns(p.pattern)
    return []


def _compared(node: ast.Compare, names: set[str]) -> list[str]:
    """Mode names a comparison tests a value against: either side of ==, !=, is, is not; the literal collection
    or constant of `x in (...)`; and `"flow" in <...mode...>` (a substring test of a mode; `"flow" in batch` tests a
    key)."""
    found, operands = [], [node.left, *node.comparators]
    for op, left, right in zip(node.ops, operands, operands[1:]):
        if not isinstance(op, (ast.In, ast.NotIn)):
            found += _names_in(left, names) + _names_in(right, names)
        else:
            found += _names_in(right, names)
            if "mode" in ast.unparse(right).lower():
                found += _names_in(left, names)
    return found


def mode_tests(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, what) for every test of a value against a mode name in `source`; a dict literal with two or more
    mode names as keys counts too (a table of modes is the same branch)."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            found = _compared(node, names)
        elif isinstance(node, ast.Match):
            found = [m for case in node.cases for v in _patterns(case.pattern) for m in _names_in(v, names)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith") and node.args):
            found = _names_in(node.args[0], names)
        elif isinstance(node, ast.Dict):
            found = [m for k in node.keys if k is not None for m in _names_in(k, names)]
            found = found if len(found) >= 2 else []
        else:
            continue
        hits += [(node.lineno, m) for m in found]
    return hits


def test_the_checker_finds_every_kind_of_mode_test():
    names = set(MODES)
    cases = ['if mode == "transfer":\n    pass', 'ok = "flow" != m', 'x = m in ("pixels", "other")',
             'x = m not in {"transfer-self"}', 'x = m.startswith("flow")', 'f = {"flow": 1, "pixels": 2}[m]',
             'x = "flow" in args.mode', 'x = m is "pixels"',
             'x = mode == DEFAULT_MODE', 'x = m in modes.DEFAULTS',
             'match mode:\n    case "flow-standin":\n        pass', 'match m:\n    case "a" | "pixels":\n        pass']
    for src in cases:
        assert mode_tests(src, names), src
    clean = ['x = mode.name == other.name', 'x = m in MODES', 'print("--mode transfer moves the photo")',
             'def f(mode="pixels"):\n    return mode', 'x = MODES["flow"].applies_to(eng)', 'x = k == "transfers"',
             'x = "flow" in batch', 'd = {"flow": [], "occ": []}']
    for src in clean:
        assert mode_tests(src, names) == [], src


def test_no_mode_name_is_tested_outside_the_registry():
    names = set(MODES)
    assert names == {"transfer", "scan", "transfer-self", "pixels", "flow", "flow-standin"}
    hits = []
    for p in sorted([*(REPO / "fv").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]):
        if p == REGISTRY:
            continue
        hits += [f"{p.relative_to(REPO)}:{line}: {name!r}" for line, name in mode_tests(p.read_text(), names)]
    assert hits == []
