"""The installed shape of Concord: one import name, every package listed, every resource shipped.

pytest's `pythonpath = ["."]` puts the checkout on sys.path, so a leftover `import services`
would still work here while failing (or importing someone else's `services`) once installed;
these checks read the code and pyproject.toml instead of trusting imports to fail.
The import contracts themselves (import-linter) and mypy run in scripts/check.sh.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# scripts/wheel_check.sh --suite runs the tests from a copy without the source folders, against the installed
# wheel: the checks of the source tree itself have nothing to read there.
needs_source = pytest.mark.skipif(
    not (ROOT / "app").is_dir(), reason="checks the source folders; run from a checkout, not the wheel's test copy"
)
MAPPED = ("app", "codebooks", "storage", "importers", "exporters", "services", "analysis")
SKIPPED_DIRS = {".venv", ".git", "build", "dist", "__pycache__", "__snapshots__", "node_modules"}


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _python_files() -> Iterator[Path]:
    stack = [ROOT]
    while stack:
        folder = stack.pop()
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                if entry.name not in SKIPPED_DIRS and not entry.name.endswith(".egg-info"):
                    stack.append(entry)
            elif entry.suffix == ".py":
                yield entry


def _imported_names(node: ast.AST) -> list[str]:
    """Absolute module names an import statement names (relative imports give none)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def _module_level_imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Imports that run when the module loads: everywhere except inside function bodies."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            for name in _imported_names(child):
                yield child.lineno, name
            stack.append(child)


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_no_bare_imports_of_the_mapped_folders():
    bare = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for name in _imported_names(node):
                if name.split(".")[0] in MAPPED:
                    bare.append(f"{_where(path, node.lineno)}: {name} (import it as concord.{name})")
    assert not bare, "\n".join(bare)


@needs_source
def test_the_scan_sees_the_project_and_catches_a_bare_import():
    files = {path.relative_to(ROOT).as_posix() for path in _python_files()}
    assert {"app/cli.py", "services/workspace.py", "storage/models.py", "tests/test_packaging.py"} <= files
    assert not any(name.startswith((".venv/", ".git/")) for name in files)
    tree = ast.parse("import os\nfrom services.coding import apply_code\nfrom . import sibling\nimport app.cli as c\n")
    names = [name for node in ast.walk(tree) for name in _imported_names(node)]
    assert [n for n in names if n.split(".")[0] in MAPPED] == ["services.coding", "app.cli"]


def test_textual_loads_only_with_the_tui():
    """Outside app/tui, Textual (directly or through concord.app.tui) is imported inside the command that opens it."""
    eager = []
    for path in _python_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative.split("/")[0] not in MAPPED or relative.startswith("app/tui/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _module_level_imports(tree):
            if name.split(".")[0] == "textual" or name == "concord.app.tui" or name.startswith("concord.app.tui."):
                eager.append(f"{_where(path, line)}: {name} at module level")
    assert not eager, "\n".join(eager)


def test_module_level_scan_skips_function_bodies():
    tree = ast.parse(
        "import textual\nif True:\n    import a.b\nclass C:\n    import c\n"
        "def f():\n    import d\nasync def g():\n    import e\n"
    )
    assert sorted(name for _, name in _module_level_imports(tree)) == ["a.b", "c", "textual"]


def _folder_of(package: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools takes a package from, by the longest mapped prefix."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return ROOT / package_dir[prefix] / Path(*parts[cut:])
    return ROOT / Path(*parts)


@needs_source
def test_every_package_folder_is_listed_and_every_listed_package_exists():
    settings = _setuptools()
    package_dir = settings["package-dir"]
    listed = set(settings["packages"])
    on_disk = set()
    for folder in MAPPED:
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            on_disk.add(".".join(("concord", folder, *relative.parts)))
    assert on_disk - listed == set(), "folders with an __init__.py missing from [tool.setuptools] packages"
    missing = sorted(p for p in listed if not (_folder_of(p, package_dir) / "__init__.py").is_file())
    assert missing == [], "listed packages without an __init__.py"
    assert set(package_dir) - {"concord"} == {f"concord.{folder}" for folder in MAPPED}
    assert all(package_dir[f"concord.{folder}"] == folder for folder in MAPPED)


@needs_source
def test_every_package_data_pattern_ships_a_file():
    settings = _setuptools()
    package_dir = settings["package-dir"]
    empty = []
    for package, patterns in settings["package-data"].items():
        assert package in settings["packages"], f"package-data for {package}, which is not a listed package"
        folder = _folder_of(package, package_dir)
        for pattern in patterns:
            if not any(path.is_file() for path in folder.glob(pattern)):
                empty.append(f"{package}: {pattern} (in {folder.relative_to(ROOT)})")
    assert empty == [], "package-data patterns that match no file"


def test_python_dash_m_concord_version(tmp_path):
    # From an empty folder: the checkout's own folders are not on the path there.
    done = subprocess.run(
        [sys.executable, "-m", "concord", "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("concord, version "), done.stdout
