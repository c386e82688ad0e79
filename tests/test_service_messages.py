"""Services speak in their own terms: no message a service raises or reports names a command-line flag
(`--tag`), since the admin and the tasks show the same message. The command adds its flag (DbopsCommand).
Fails listing every offending file:line."""

from __future__ import annotations

import ast
import re

from tests.paths import ROOT

# Everything below the commands: services, engines, artifacts, instrumentation, and the project's services.
SPEAKERS = ("dbops/services", "dbops/engines", "dbops/artifacts", "dbops/instrumentation", "multipult/core/services")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
REPORTED = {"warnings", "notes", "messages", "problems"}  # result lists the commands and the admin print


def _texts(node: ast.AST) -> list[str]:
    return [child.value for child in ast.walk(node) if isinstance(child, ast.Constant) and isinstance(child.value, str)]


def _user_facing(tree: ast.AST) -> list[ast.AST]:
    """What a user reads: the exceptions raised, and what is appended to a result's warnings/notes."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            found.append(node.exc)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "append"
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr in REPORTED
        ):
            found.append(node)
    return found


def flag_words_in_messages() -> list[str]:
    offending = []
    for top in SPEAKERS:
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in _user_facing(tree):
                flags = [flag for text in _texts(node) for flag in FLAG.findall(text)]
                if flags:
                    offending.append(f"{path.relative_to(ROOT)}:{node.lineno}: {', '.join(flags)}")
    return offending


def test_no_service_message_names_a_command_line_flag():
    assert flag_words_in_messages() == []


def test_the_check_sees_a_flag_word_in_a_raise_and_in_a_reported_warning():
    sample = 'raise BackupError(f"--tag {tag} is too long")\nresult.warnings.append("run list_backups --sync")\n'
    nodes = _user_facing(ast.parse(sample))
    assert [FLAG.findall(" ".join(_texts(node))) for node in nodes] == [["--tag"], ["--sync"]]
