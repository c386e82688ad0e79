"""Anonymized jsonl exports rendered by the server (simple rules in SQL, kept text scanned by distinct
value) write the same records as row by row, and refuse the same record and field."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from dbops.engines.postgresql.data import PostgreSQLData
from dbops.exceptions import PersonalDataFound
from dbops.services.datamigration.exports import export_data
from multipult.core.models import Dictionary, DictionaryEntry
from tests.dbops.services.datamigration.helpers import seed


def _records(path):
    records = []
    for line in path.read_text().splitlines()[1:-1]:
        item = json.loads(line)
        for name, value in item["data"].items():  # the server writes 6 fraction digits only when needed
            if isinstance(value, str) and len(value) > 18 and value[10:11] == "T":
                item["data"][name] = datetime.fromisoformat(value)
        records.append(item)
    return records


def _row_by_row(monkeypatch):
    monkeypatch.setattr(PostgreSQLData, "supports_sql_masking", False)


@pytest.mark.django_db
def test_the_server_masks_as_python_does(tmp_path, monkeypatch):
    seed(scale=0.2)
    on_server, in_python = tmp_path / "server.jsonl", tmp_path / "python.jsonl"
    result = export_data(entities=None, output=on_server, fmt="jsonl", anonymize=True)
    _row_by_row(monkeypatch)
    reference = export_data(entities=None, output=in_python, fmt="jsonl", anonymize=True)
    assert _records(on_server) == _records(in_python)
    assert result.scanned_strings == reference.scanned_strings > 0
    assert any(item["entity"] == "audit_logs" and item["data"]["ip_address"] for item in _records(on_server))


@pytest.mark.django_db
def test_a_hit_in_a_later_record_names_the_same_record_and_field_as_row_by_row(tmp_path, monkeypatch):
    seed(scale=0.2)
    dictionary = Dictionary.objects.order_by("pk").first()
    entries = list(DictionaryEntry.objects.order_by("pk")[:40])
    for entry in (entries[30], entries[12]):  # the earlier record must be the one named
        entry.value = "write to jane.doe@example.org"
        entry.save(update_fields=["value"])
    assert dictionary is not None
    messages = []
    for path in (tmp_path / "server.jsonl", tmp_path / "python.jsonl"):
        with pytest.raises(PersonalDataFound) as caught:
            export_data(entities=None, output=path, fmt="jsonl", anonymize=True)
        assert not path.exists()
        messages.append(str(caught.value))
        _row_by_row(monkeypatch)
    assert messages[0] == messages[1] and "dictionary_entries record 13, field 'value'" in messages[0]
