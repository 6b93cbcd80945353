"""The package's shape: no import cycle, and the estimators without the data-ops stack."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "labelclean"


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
