"""The csv format keeps NULL and the empty string of a text column apart: a NULL text value is the cell
`\\N`, a text that is a backslash run followed by N gets one more backslash, and an empty cell keeps its
old meaning (text: '', other columns: NULL), so files from other tools read as before."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from dbops.exceptions import ImportValidationError
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.imports import import_data
from multipult.core.models import Concept, User
from tests.commands import command_error, run_command
from tests.dbops.services.datamigration.helpers import EXPORT_HEADER, seed

pytestmark = pytest.mark.django_db

# django_admin_log: object_id is a nullable TextField, change_message a TextField that is not nullable.
ADMIN_LOGS = {
    "name": "admin_logs",
    "model": "admin.LogEntry",
    "anonymize": {"object_id": "keep", "object_repr": "keep", "change_message": "keep"},
}
MASKED_OBJECT_IDS = {**ADMIN_LOGS, "anonymize": {**ADMIN_LOGS["anonymize"], "object_id": "null"}}
# (object_id, change_message): NULL and '' apart, and texts that look like the NULL marker kept as they are
VALUES = [(None, ""), ("", "\\N"), ("\\N", ""), ("\\\\N", "\\N"), ("\\\\\\N", "\\\\N"), ("N", "\\")]


@pytest.fixture
def admin_logs(settings):
    """The admin's log entries as the only entity, one row per VALUES pair."""
    settings.DBOPS = {**settings.DBOPS, "ENTITIES": [ADMIN_LOGS]}
    seed(scale=0.1)
    user, content_type = User.objects.order_by("pk").first(), ContentType.objects.get_for_model(Concept)
    for object_id, change_message in VALUES:
        LogEntry.objects.create(
            user=user, content_type=content_type, object_id=object_id, object_repr="a concept",
            action_flag=2, change_message=change_message,
        )  # fmt: skip


def _stored() -> list[tuple]:
    return list(LogEntry.objects.order_by("pk").values_list("object_id", "change_message"))


@pytest.mark.parametrize("name", ["logs.zip", "logs"])
def test_null_empty_and_marker_looking_texts_round_trip(admin_logs, tmp_path, name):
    target = tmp_path / name
    export_data(entities="admin_logs", output=target, fmt="csv")
    LogEntry.objects.all().delete()

    import_data(input_path=target, fmt="csv")

    assert _stored() == VALUES


@pytest.mark.parametrize("name", ["logs.zip", "logs"])
def test_the_commands_round_trip_nulls_of_an_anonymized_export(admin_logs, settings, tmp_path, name):
    # given an anonymized export that masks the nullable text (null: '', NULL kept) and keeps the other
    settings.DBOPS = {**settings.DBOPS, "ENTITIES": [MASKED_OBJECT_IDS]}
    target = tmp_path / name
    run_command("export_data", "--format", "csv", "--entities", "admin_logs", "--anonymize", "--output", str(target))
    LogEntry.objects.all().delete()
    # when it is imported
    run_command("import_data", "--format", "csv", "--input", str(target))
    # then the masked text is '' and its NULL stays NULL (as the rule makes them), the kept texts as they were
    assert _stored() == [(None if object_id is None else "", message) for object_id, message in VALUES]


def _foreign_csv(tmp_path, *rows: str):
    """A csv folder as another tool writes it: admin_logs records with these cells ({user}: a user's id)."""
    folder = tmp_path / "foreign"
    folder.mkdir()
    fields = ["id", "action_time", "user", "content_type", "object_id", "object_repr", "action_flag", "change_message"]
    manifest = {**EXPORT_HEADER, "entities": {"admin_logs": {"file": "admin_logs.csv", "fields": fields}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    user = User.objects.order_by("pk").first()
    lines = [",".join(fields), *(row.format(user=user.pk) for row in rows)]
    (folder / "admin_logs.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_a_foreign_csvs_empty_cell_is_still_empty_text_and_its_null_marker_null(admin_logs, tmp_path):
    LogEntry.objects.all().delete()
    folder = _foreign_csv(
        tmp_path,
        "900001,2025-01-01T00:00:00+00:00,{user},,,a concept,2,",
        '900002,2025-01-01T00:00:00+00:00,{user},,\\N,a concept,2,""',
    )

    import_data(input_path=folder, fmt="csv")

    stored = LogEntry.objects.order_by("pk").values_list("object_id", "change_message", "content_type")
    assert list(stored) == [("", "", None), (None, "", None)]


def test_the_null_marker_for_a_required_text_is_the_usual_one_problem_refusal(admin_logs, tmp_path):
    LogEntry.objects.all().delete()
    folder = _foreign_csv(tmp_path, "900001,2025-01-01T00:00:00+00:00,{user},,1,\\N,2,")

    problem = "admin_logs record 1, field 'object_repr': required (null given)"
    with pytest.raises(ImportValidationError, match=re.escape(problem)):
        import_data(input_path=folder, fmt="csv")
    message = command_error("import_data", "--format", "csv", "--input", str(folder), one_line=False)

    assert "Traceback" not in message and message.splitlines()[1:] == [f"  {problem}"]
    assert not LogEntry.objects.exists()
