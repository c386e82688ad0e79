"""dbops is a reusable app: no module under dbops/ imports multipult, and its code names multipult
nowhere else either (comments and docstrings may, as prose). The project plugs in through settings
(DBOPS), signals and AppConfig.ready() instead."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import ROOT

DBOPS = ROOT / "dbops"

# Persisted format identifiers that predate the app's independence: files and encrypted backups already
# written carry them, so changing either would make those unreadable. They name a format, not a module.
PERSISTED_IDENTIFIERS = {
    ("dbops/services/datamigration/formats/base.py", "multipult-export"),
    ("dbops/artifacts/crypto.py", "multipult-backup-key-check"),
}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings (of the module, classes and functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                found.add(id(first.value))
    return found


def multipult_references(path: Path, source: str) -> list[str]:
    """Every import of multipult, and every name or string in the code (not a docstring) mentioning it."""
    relative = path.relative_to(ROOT).as_posix() if path.is_absolute() else path.as_posix()
    tree = ast.parse(source, filename=relative)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{relative}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [
                f"{where}: import {alias.name}" for alias in node.names if alias.name.split(".")[0] == "multipult"
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "multipult":
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Name) and node.id.lower() == "multipult":
            found.append(f"{where}: name {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr.lower() == "multipult":
            found.append(f"{where}: attribute .{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) and id(node) not in docstrings:
            text = node.value.decode(errors="replace") if isinstance(node.value, bytes) else node.value
            if "multipult" in text.lower() and (relative, text) not in PERSISTED_IDENTIFIERS:
                found.append(f"{where}: string {text[:60]!r}")
    return found


def test_nothing_under_dbops_imports_or_names_multipult():
    sources = sorted(DBOPS.rglob("*.py"))
    assert len(sources) > 50  # the walk really sees the app
    found = [reference for path in sources for reference in multipult_references(path, path.read_text())]
    assert found == []


def test_the_app_templates_do_not_name_multipult():
    templates = sorted((DBOPS / "templates").rglob("*.html"))
    assert templates  # the admin pages ship inside the app
    assert [path for path in templates if "multipult" in path.read_text().lower()] == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import multipult.celery\n", "import multipult.celery"),
        ("from multipult.core.models import AuditLog\n", "from multipult.core.models import ..."),
        ("def f():\n    from multipult import celery_app\n", "from multipult import ..."),
        ("import importlib\napp = importlib.import_module('multipult.celery')\n", "string 'multipult.celery'"),
        ("MESSAGE = f'not a MultiPULT export: {1}'\n", "string 'not a MultiPULT export: '"),
        ("x = settings.multipult\n", "attribute .multipult"),
    ],
)
def test_the_checker_finds_each_kind_of_reference(source, expected):
    (reference,) = multipult_references(Path("dbops/example.py"), source)
    assert reference.endswith(expected)


def test_the_checker_lets_prose_and_persisted_identifiers_be():
    prose = '"""Used by multipult.settings."""\n# multipult mounts it\ndef f():\n    """For MultiPULT."""\n'
    assert multipult_references(Path("dbops/example.py"), prose) == []
    marker = 'FILE_MARKER = "multipult-export"\n'
    assert multipult_references(Path("dbops/services/datamigration/formats/base.py"), marker) == []
    assert multipult_references(Path("dbops/other.py"), marker) != []
