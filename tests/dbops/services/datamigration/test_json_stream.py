"""The streaming reader of json exports: the same records (numbers read exactly) and errors as json.load, in
bounded memory."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbops.exceptions import ImportFormatError
from dbops.services.datamigration.formats import read_json
from dbops.services.datamigration.formats.base import json_loads
from dbops.services.datamigration.formats.json_stream import JsonDocumentReader, JsonShapeError, JsonStreamError

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner))
records = st.dictionaries(st.text(max_size=10), values, max_size=6)
documents = st.fixed_dictionaries(
    {
        "format": st.just("multipult-export"),
        "entities": st.dictionaries(st.sampled_from(["users", "roles", "concepts"]), st.lists(records, max_size=5)),
        "exported_at": st.text(max_size=20),
    }
)


def read_all(text: str, chunk_chars: int) -> tuple[list, dict, JsonDocumentReader]:
    reader = JsonDocumentReader(io.StringIO(text), chunk_chars=chunk_chars)
    header: dict = {}
    return list(reader.read(header)), header, reader


@settings(max_examples=60, deadline=None)
@given(document=documents, indent=st.sampled_from([None, 0, 2]), chunk_chars=st.sampled_from([1, 3, 7, 64, 4096]))
def test_the_same_records_as_json_load_whatever_the_chunking(document, indent, chunk_chars):
    text = json.dumps(document, indent=indent)
    found, header, _ = read_all(text, chunk_chars)
    parsed = json_loads(text)  # as json.loads, with each number as written (the reader's JsonNumber)
    expected = [(name, record) for name, items in parsed["entities"].items() for record in items]
    assert found == expected
    assert header == {key: value for key, value in document.items() if key != "entities"}


@settings(max_examples=60, deadline=None)
@given(document=documents, cut=st.floats(min_value=0, max_value=0.999), chunk_chars=st.sampled_from([1, 5, 4096]))
def test_any_truncation_is_an_error_never_a_silent_partial_read(document, cut, chunk_chars):
    text = json.dumps(document, indent=1)
    truncated = text[: int(len(text) * cut)]
    with pytest.raises(JsonStreamError):
        read_all(truncated, chunk_chars)


def test_errors_name_the_same_line_and_column_as_json():
    text = '{"format": "x",\n "entities": {"users": [\n  {"a": 1},\n  {"b": 2,, "c": 3}\n]}}'
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    for chunk_chars in (1, 4, 1000):
        with pytest.raises(JsonStreamError) as found:
            read_all(text, chunk_chars)
        assert (found.value.line, found.value.column) == (expected.value.lineno, expected.value.colno)


def test_a_malformed_record_is_reported_without_reading_the_rest():
    good = ",\n".join(json.dumps({"id": i, "name": f"user {i}"}) for i in range(50_000))
    text = '{"format": "multipult-export", "entities": {"users": [{"id": 0, "name": tru},\n' + good + "]}}"

    class CountingReader(io.StringIO):
        read_chars = 0

        def read(self, size=-1):
            chunk = super().read(size)
            self.read_chars += len(chunk)
            return chunk

    handle = CountingReader(text)
    with pytest.raises(JsonStreamError, match="Expecting value"):
        list(JsonDocumentReader(handle, chunk_chars=4096).read({}))
    assert handle.read_chars <= 3 * 4096 < len(text)


def test_memory_is_bounded_by_the_chunk_and_the_largest_record_not_the_file():
    items = [{"id": i, "text": "x" * (i % 300)} for i in range(20_000)]
    text = json.dumps({"format": "multipult-export", "version": 1, "entities": {"concepts": items}}, indent=1)
    found, _, reader = read_all(text, 8192)
    assert len(found) == 20_000
    largest_record = max(len(json.dumps(item, indent=1)) for item in items)
    assert reader.largest_window <= 8192 + largest_record + 64 < len(text) / 50


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"entities": []}', "'entities' is not an object"),
        ('{"entities": {"users": {}}}', "entities.users is not a list"),
    ],
)
def test_valid_json_of_the_wrong_shape(text, error):
    with pytest.raises(JsonShapeError, match=error):
        read_all(text, 4)


def test_read_json_checks_a_header_that_comes_after_the_entities(tmp_path):
    late = tmp_path / "late.json"
    late.write_text('{"entities": {"roles": [{"name": "r"}]}, "format": "multipult-export", "version": 1}')
    assert list(read_json(late)) == [("roles", 1, {"name": "r"})]

    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"entities": {"roles": [{"name": "r"}]}, "format": "something-else"}')
    with pytest.raises(ImportFormatError, match="not an export_data file"):
        list(read_json(wrong))

    empty = tmp_path / "empty.json"
    empty.write_text('{"format": "multipult-export", "version": 1}')
    with pytest.raises(ImportFormatError, match="no 'entities' object"):
        list(read_json(empty))
