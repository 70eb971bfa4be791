"""The package's shape (issue 12, STYLE practices 12 and 16), read from the source with `ast`:
no import cycle inside fv, no module over 400 lines, no branch on the model family or the motion source
outside the family modules and the config module, `engine` imports nothing else from fv (fv.photo included),
a real photo's code lives in fv.photo alone (its old modules are gone, and nothing imports them)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

FV = Path(__file__).resolve().parents[2] / "fv"
MAX_LINES = 400
# where choosing by family or motion source is the point
FAMILY_HOMES = ("engine/families/", "engine/config.py")
BRANCHES = [re.compile(p) for p in (
    r"isinstance\([^)]*(GANConfig|DiffusionConfig)", r"motion_source\s*[!=]=", r"""["']R["']\s+(not\s+)?in\b""",
    r"\bin\s+(GAN|DIFFUSION)_SETTINGS\b", r"\bis_gan\b")]


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(FV.rglob("*.py")):
        parts = p.relative_to(FV.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The fv modules `name` imports anywhere in its file (top level or inside functions); imports for type
    checkers only (under `if TYPE_CHECKING:`) never run, so they make no cycle."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for stmt in node.body for n in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                root = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(root + ([base] if base else []))
            for a in node.names:   # `from pkg import module` imports that module
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" and node.args
              and isinstance(node.args[0], (ast.Constant, ast.JoinedStr))):
            raise AssertionError(f"{path}: __import__ hides an import from this check")
    return {m for m in found if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle_and_a_relative_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    known = set(modules())
    unet = modules()["fv.engine.models.unet"]
    assert "fv.engine.models.mixer" in imports("fv.engine.models.unet", unet, known)   # `from .mixer import`


def test_no_import_cycle_inside_fv():
    mods = modules()
    known = set(mods)
    graph = {name: imports(name, path, known) for name, path in mods.items()}
    assert cycles(graph) == []


def test_engine_imports_nothing_else_from_fv():
    mods = modules()
    known = set(mods)
    bad = {name: sorted(m for m in imports(name, path, known) if not m.startswith("fv.engine") and m != "fv")
           for name, path in mods.items() if name.startswith("fv.engine")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_no_module_over_400_lines():
    long = {str(p.relative_to(FV)): n for p in FV.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_branch_on_family_or_motion_source_outside_the_family_modules():
    hits = []
    for p in FV.rglob("*.py"):
        rel = p.relative_to(FV).as_posix()
        if rel.startswith(FAMILY_HOMES):
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            hits += [f"{rel}:{i}: {line.strip()}" for rx in BRANCHES if rx.search(code)]
    assert hits == []


# where a real photo's code lived before fv.photo: no module there, no import of one anywhere
GONE = ("fv.photo_video", "fv.engine.faces", "fv.engine.face_aligner", "fv.engine.motion_transfer",
        "fv.data.standin_motion", "fv.data.au_readout")
PHOTO_MAY_IMPORT = ("fv.photo", "fv.engine", "fv.data")   # never the CLI, metrics, trainer, export or the demo


def test_engine_imports_nothing_of_photo_and_photo_sits_below_the_cli():
    mods = modules()
    known = set(mods)
    graph = {name: imports(name, path, known) for name, path in mods.items()}
    assert any(n.startswith("fv.photo.") for n in graph)
    assert {n: sorted(m for m in deps if m.startswith("fv.photo")) for n, deps in graph.items()
            if n.startswith("fv.engine") and any(m.startswith("fv.photo") for m in deps)} == {}
    assert {n: sorted(m for m in deps if not m.startswith(PHOTO_MAY_IMPORT)) for n, deps in graph.items()
            if n.startswith("fv.photo") and any(not m.startswith(PHOTO_MAY_IMPORT) for m in deps)} == {}
    # fv.data and fv.photo use each other (MUG aligns with fv.photo; the stand-in is drawn by fv.data's generator),
    # module by module without a cycle
    assert [c for c in cycles(graph) if any(m.startswith("fv.photo") for m in c)] == []


def test_the_photo_code_s_old_modules_are_gone_and_nothing_imports_them():
    mods = modules()
    assert [m for m in GONE if m in mods] == []
    hits = []
    for p in sorted(f for d in ("fv", "benchmarks", "tests") for f in (FV.parent / d).rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) else [])
            hits += [f"{p.relative_to(FV.parent)}:{node.lineno}: {n}" for n in names if n in GONE]
    assert hits == []
