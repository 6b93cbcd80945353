"""The package's shape: no import cycle, the estimators without the data-ops stack, a test file per module, sizes."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "labelclean"
TESTS = Path(__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, name: str) -> set[str]:
    """Package modules imported when ``path`` is imported (statements at module level, outside functions)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names if a.name.startswith("labelclean")}
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    parent = package.split(".")[: len(package.split(".")) - sub.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                if base.startswith("labelclean"):
                    found.add(base)
                    found |= {f"{base}.{a.name}" for a in sub.names}
    return found


def test_no_import_cycle_among_the_modules():
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: sorted(_top_level_imports(p, name) & modules.keys() - {name}) for name, p in modules.items()}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in graph[name]:
            assert state.get(dep) != 1, "import cycle: " + " -> ".join([*path, name, dep])
            if dep not in state:
                visit(dep, [*path, name])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
    assert "labelclean.coteaching" in graph and graph["labelclean.coteaching"], "the import graph was not read"


BLOCKED = ("pyarrow", "matplotlib", "click", "rich")

SCRIPT = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import numpy as np
import labelclean
from labelclean import AnnotatorConsensus, ContrastiveEncoder, CoTeachingFilter, PUClassifier, SelfTrainer
from labelclean import find_label_issues
y = np.array([0, 0, 0, 1, 1, 1])
p = np.array([[0.9, 0.1]] * 3 + [[0.2, 0.8]] * 2 + [[0.95, 0.05]])
assert not find_label_issues(y, p)["is_clean"].iloc[-1]
votes = np.array([[0, 0, 1], [1, 1, 1], [0, 1, 0], [1, 1, 0]])
print(AnnotatorConsensus(method="majority").fit(None, votes).consensus_labels_.tolist())
print(sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r}))
"""


def test_the_estimators_import_and_run_without_the_data_ops_stack():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "[0, 1, 0, 1]"
    assert lines[1] == "[]"  # none of the data-ops libraries was loaded


# ---------------------------------------------------------------------------
# The tests mirror the package
# ---------------------------------------------------------------------------

#: Modules that need no test file of their own, each with the reason.
EXEMPT = {
    "__init__.py": "the lazy namespace of the public names: every test imports through it, and "
    "tests/test_cli_startup.py checks what importing it loads",
    "__main__.py": "one call of labelclean.cli.main, run by every test that starts `python -m labelclean`",
    "_compat.py": "scikit-learn's private names imported in one place, nothing of its own",
}


def _test_files(module: Path) -> list[Path]:
    """The test files of a module: ``labelclean/x.py`` or ``labelclean/_x.py`` → ``tests/test_x.py``.

    A module of a subpackage, ``labelclean/sub/...``, may be tested in any ``tests/test_sub*.py``.
    """
    parts = module.relative_to(PACKAGE).parts
    if len(parts) > 1:
        return sorted(TESTS.glob(f"test_{parts[0]}*.py"))
    path = TESTS / f"test_{module.stem.lstrip('_')}.py"
    return [path] if path.is_file() else []


def test_every_module_has_its_test_file():
    modules = {p.relative_to(PACKAGE).as_posix(): p for p in sorted(PACKAGE.rglob("*.py"))}
    assert "coteaching.py" in modules and "cli/_common.py" in modules, "the package was not read"
    missing = [
        f"labelclean/{name}: tests/test_{Path(name).stem.lstrip('_')}.py"
        for name, path in modules.items()
        if name not in EXEMPT and not _test_files(path)
    ]
    assert not missing, f"modules without their test file: {missing}"
    gone = sorted(name for name in EXEMPT if name not in modules)
    assert not gone, f"EXEMPT names modules that no longer exist: {gone}"


MAX_CLASS_LINES = 400
MAX_FUNCTION_LINES = 80


def _definitions(tree: ast.AST, prefix: str = ""):
    """``(qualified name, node)`` of every class and function, methods and nested functions included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _definitions(node, f"{prefix}{node.name}.")
        else:
            yield from _definitions(node, prefix)


def test_no_class_over_400_lines_and_no_function_over_80():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for name, node in _definitions(ast.parse(path.read_text())):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                too_long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {name}: {lines} lines > {limit}")
    assert not too_long, "\n".join(too_long)
