"""The package's shape: no import cycles, data flowing one way, a CLI that answers --help without torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mmkit"

# module prefix -> prefixes it must never import (cli -> apps -> tasks -> engine/models/data/metrics, never back)
FORBIDDEN = {
    "mmkit.models": ("mmkit.tasks", "mmkit.cli", "mmkit.apps", "mmkit.engine"),
    "mmkit.data": ("mmkit.tasks", "mmkit.cli", "mmkit.apps", "mmkit.engine"),
    "mmkit.metrics": ("mmkit.tasks", "mmkit.cli", "mmkit.apps", "mmkit.engine"),
    "mmkit.losses": ("mmkit.tasks", "mmkit.cli", "mmkit.apps", "mmkit.engine"),
    "mmkit.engine": ("mmkit.tasks", "mmkit.cli", "mmkit.apps"),
    "mmkit.tasks": ("mmkit.apps",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every mmkit module `path` imports, at module level or inside a function (not under `if TYPE_CHECKING:`,
    which never runs)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("mmkit"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if not mod.startswith("mmkit"):
                continue
            for a in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{mod}.{a.name}"
                out.add(
                    sub
                    if (SRC.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                    or (SRC.parent / Path(*sub.split(".")) / "__init__.py").exists()
                    else mod
                )
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    """Module -> the mmkit modules it imports. Edges to the root package `mmkit` are left out: every import runs
    mmkit/__init__ first anyway, and it imports nothing of mmkit at module level (checked below)."""
    mods = {module_name(p): p for p in SRC.rglob("*.py")}
    return {m: {i for i in imports_of(p) if i in mods and i != "mmkit"} for m, p in mods.items()}


def test_the_root_package_imports_nothing_of_mmkit_at_module_level():
    tree = ast.parse((SRC / "__init__.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [n for n in top if "mmkit" in ast.unparse(n)]


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
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

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_even_through_function_local_imports():
    assert cycles(graph()) == []


def test_data_flows_one_way():
    bad = []
    for mod, deps in graph().items():
        for prefix, forbidden in FORBIDDEN.items():
            if mod == prefix or mod.startswith(prefix + "."):
                bad += [f"{mod} -> {d}" for d in deps if d.startswith(forbidden)]
    assert bad == []


def run_mmkit(*args: str) -> subprocess.CompletedProcess:
    code = (
        "import sys; from mmkit.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr); sys.exit(code)"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_version_prints_the_package_version():
    from importlib.metadata import version

    r = run_mmkit("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"mmkit {version('mmkit')}"


@pytest.mark.parametrize("args", [("--help",), ("classify", "--help"), ("classify", "train", "--help")])
def test_help_imports_no_torch(args):
    r = run_mmkit(*args)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().endswith("NO-TORCH")


def test_every_task_group_answers_help_without_torch():
    from mmkit.tasks.registry import task_specs

    for spec in task_specs():
        r = run_mmkit(spec.name, "--help")
        assert r.returncode == 0 and r.stderr.strip().endswith("NO-TORCH"), (spec.name, r.stderr[-300:])


def test_every_task_package_exports_names_that_no_submodule_hides():
    """A package's lazy export named like one of its modules would turn into that module once it is imported."""
    import importlib
    import pkgutil
    import types

    from mmkit.tasks.registry import task_specs

    for spec in task_specs():
        pkg = importlib.import_module(spec.package)
        modules = [m.name for m in pkgutil.iter_modules(pkg.__path__)]
        for m in modules:
            importlib.import_module(f"{spec.package}.{m}")
        for name in pkg.__getattr__.exports:
            assert name not in modules, (spec.package, name)
            assert not isinstance(getattr(pkg, name), types.ModuleType), (spec.package, name)
        assert spec.predictor().task == spec.name
