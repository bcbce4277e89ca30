"""Any subset of the test suite collects on its own.

The test folders have no __init__.py, so pytest (rootdir-relative "prepend" imports) loads every
conftest.py as a top-level module named `conftest`: `from conftest import x` gets whichever
conftest came first (`pytest test/data test/training` failed that way). Shared helpers live in
uniquely named modules or in the library, never in a conftest.
"""
from __future__ import annotations

import ast
import collections
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_DIR = ROOT / "test"


def _python_files() -> list[Path]:
    return sorted(p for p in TEST_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_imports_a_conftest():
    offenders = [str(p.relative_to(ROOT)) for p in _python_files() if "conftest" in _imported_top_level_names(p)]
    assert not offenders, f"import helpers from a uniquely named module, not from conftest: {offenders}"


def test_module_names_are_unique_across_test_folders():
    # Two test/helper modules with one basename collide in sys.modules ("import file mismatch").
    by_name = collections.defaultdict(list)
    for path in _python_files():
        if path.name != "conftest.py":
            by_name[path.stem].append(str(path.relative_to(ROOT)))
    duplicates = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not duplicates, duplicates


def test_helper_modules_imported_by_name_sit_beside_their_importers():
    # A bare `import helper` works only if pytest put the helper's folder on sys.path, which it
    # does for the folder of the importing test module (and its conftest).
    helpers = {p.stem: p.parent for p in _python_files() if not p.name.startswith("test_") and p.name != "conftest.py"}
    for path in _python_files():
        for name in _imported_top_level_names(path) & set(helpers):
            assert helpers[name] == path.parent, f"{path.relative_to(ROOT)} imports {name} from {helpers[name]}"


def test_data_and_training_subsets_collect_together():
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "test/data", "test/training"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "error" not in run.stdout.splitlines()[-1].lower(), run.stdout[-2000:]
