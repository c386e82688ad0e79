"""The personal-data scanner of anonymized exports: what it finds (phones as people write them, a card or an
address before a full stop, lower-case IBANs and NI numbers, IPv6 without digits, card numbers inside JSON,
real names reversed or with a middle initial), what it lets through (timestamps, ids, hashes, versions,
money), and that its search is linear in the length of the text."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from dbops.engines.postgresql.data import PostgreSQLData
from dbops.exceptions import PersonalDataFound
from dbops.services.datamigration.entities import ENTITIES
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.formats.base import JsonNumber
from dbops.services.datamigration.pii_scan import PiiScanner, personal_data_in
from multipult.core.models import AuditLog
from tests.dbops.services.datamigration.helpers import fingerprint
from tests.dbops.services.datamigration.test_masking import _entry, _with_rules

PHONE, CARD, IP, IBAN = "a phone number", "a card number", "an IP address", "an IBAN"
NATIONAL_ID = "a national id number"

# --- patterns ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # a trailing full stop ends the sentence, not the number
        ("Paid with 4111111111111111.", CARD),
        ("Paid with 4111 1111 1111 1111.", CARD),
        ("Last login from 203.0.113.7.", IP),
        ("IBAN DE89370400440532013000.", IBAN),
        # case does not matter (the IBAN keeps its mod-97 check, the NI number its prefixes)
        ("IBAN de89 3704 0044 0532 0130 00", IBAN),
        ("iban gb82west12345698765432", IBAN),
        ("NI ab123456c", NATIONAL_ID),
        ("ni ab 12 34 56 c", NATIONAL_ID),
        # a 4-letter word after a short IBAN is not part of it
        ("BE68 5390 0754 7034 EUR", IBAN),
        # phones as the project's seed writes them (Faker en_US) and as people do elsewhere
        ("+442079460958", PHONE),
        ("(842)964-8658", PHONE),
        ("(555) 123-4567", PHONE),
        ("+1 (555) 123-4567", PHONE),
        ("+33 6 12 34 56 78", PHONE),
        ("+44 (0)20 7946 0958", PHONE),
        ("882-682-9888x754", PHONE),
        ("5767033452", PHONE),
        ("491.404.7438x8254", PHONE),
        ("+1-499-648-8751x0557", PHONE),
        ("001-874-539-1500x080", PHONE),
        ("1 800 555 0199", PHONE),
        ("call 0044 20 7946 0958 today", PHONE),
        ("07911 123456", PHONE),
        ("01614960978", PHONE),
        ("+55 93 9825-9791", PHONE),
        # card-shaped digits failing their check are still tried as a phone
        ("0044 2079 4609 58", PHONE),
        ("+4420794609581", PHONE),
        # IPv6 needs no digit
        ("from dead:beef::cafe", IP),
        ("from DEAD:BEEF::CAFE.", IP),
        # payment cards of each length the scanner takes
        ("amex 378282246310005", CARD),
        ("diners 3056-930902-5904", CARD),
        ("amex 3782 822463 10005", CARD),
        ("visa 4222222222222", CARD),
        ("mastercard 2223003122003222", CARD),
    ],
)
def test_the_scanner_finds_personal_data_as_people_write_it(text, found):
    assert personal_data_in(text) == found


@pytest.mark.parametrize(
    "text",
    [
        "2024-09-12T05:06:15+00:00",
        "2024-09-12T05:06:15.123456+00:00",
        "2024-09-12 05:06:15",
        "2024-09-12",
        "at 12:30:45",
        "550e8400-e29b-41d4-a716-446655440000",
        "12345678-1234-1234-1234-123456789012",
        "0123456789abcdef0123456789abcdef",  # a UUID's hex: no IBAN of its length starts so
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "version 1.2.3",
        "1.2.3.4.5",
        "build 10.0.19041.1",
        "id 1234567890",  # ten digits, but no North American number starts with 1
        "1726117575000",  # milliseconds since 1970 pass Luhn, and no card starts with 1
        "4006381333931",  # a product barcode (EAN-13)
        "ISBN 978-3-16-148410-0",
        "pi 3.14159265358979",
        "1234567.891",
        "total 1,234,567.89",
        "1 234 567 890",
        "Rooms 101 102 103 104",
        "42",
        "555-1234",
        "std::vector",
        "a[1::2]",
        "localhost ::1",
        "00:1A:2B:3C:4D:5E",
        "order 4111 1111 1111 1112",
    ],
)
def test_the_scanner_lets_ordinary_values_through(text):
    assert personal_data_in(text) is None


# Each text is 300 KB of one shape a backtracking search restarts on; a quadratic search would take hours
# on it (the test would hang until its timeout), a linear one well under a second. Counting, not timing:
# the planted phone after the run shows each search went through it to the end.
_TEXT_LENGTH = 300_000


_RESTARTING_SHAPES = ["a.", "1-", "1 ", ":", "a1:", "1", "a@", "1.", "(1)", "4111 ", "de89 ", "Ab ", "ssn ", "ab-1"]
# text that is searched a second time as a reader sees it: decoded, its characters made plain
_DISGUISED_SHAPES = ["1\u2013", "\uff11", "\u200b1", "M\u00f3 ", "%41", "&#", "&amp;", "<b", "<b>1"]


@pytest.mark.parametrize("shape", _RESTARTING_SHAPES + _DISGUISED_SHAPES)
def test_the_search_is_linear_in_the_length_of_the_text(shape):
    scanner = _remembering(username="zk.user", first_name="Zebulonia", last_name="Krzywoblocka")  # searched too
    run = "1" + shape * (_TEXT_LENGTH // len(shape))
    assert scanner.text_holds(run) is None
    assert scanner.text_holds(run + " call (842)964-8658") == PHONE


# --- numbers inside kept JSON -----------------------------------------------------------------------------


def _scanner_keeping(field: str) -> PiiScanner:
    scanner = PiiScanner()
    scanner.scanned_fields["audit_logs"] = [field]
    return scanner


@pytest.mark.parametrize(
    "changes",
    [
        {"card": 4111111111111111},
        {"paid": [{"with": 5555555555554444}]},
        {"card": JsonNumber("4111111111111111")},  # a file's number as written
        {"card": JsonNumber("4.111111111111111E+15")},
        {"card": 4111111111111111.0},
    ],
)
def test_a_card_number_inside_kept_json_fails(changes):
    scanner = _scanner_keeping("changes")
    with pytest.raises(PersonalDataFound, match="audit_logs record 3, field 'changes' holds a card number"):
        scanner.scan("audit_logs", 3, {"changes": changes})


def test_other_numbers_inside_kept_json_pass_and_only_strings_are_counted():
    # a nine-digit integer is an id far more often than an SSN, a 13-digit one a timestamp in milliseconds
    changes = {
        "ssn": 123456789, "id": 1726117575000, "flag": True, "price": JsonNumber("12.50"), "ratio": 0.5,
        "huge": JsonNumber("1E+1000000"), "tiny": Decimal("4111111111111111E-30"), "order": 4111111111111112,
    }  # fmt: skip
    scanner = _scanner_keeping("changes")
    scanner.scan("audit_logs", 1, {"changes": changes})
    assert scanner.strings == len(changes)  # the keys; numbers are checked, not counted as strings


def test_a_kept_number_column_is_not_searched():
    scanner = _scanner_keeping("entity_id")  # an id is an id, whatever its digits
    scanner.scan("audit_logs", 1, {"entity_id": 4111111111111111})
    assert scanner.strings == 0


# --- real identity values ---------------------------------------------------------------------------------


def _remembering(**user) -> PiiScanner:
    scanner = PiiScanner()
    scanner.prepare(ENTITIES["users"])
    scanner.remember("users", {"username": "", "first_name": "", "last_name": "", "email": "", **user})
    return scanner


NAME = "a real person's name of this export"
IDENTITY = "a real identity value (username or email) of this export"


@pytest.mark.parametrize(
    ("user", "text", "found"),
    [
        ({"first_name": "Monica", "last_name": "Brown"}, "ask Monica Brown", NAME),
        ({"first_name": "Monica", "last_name": "Brown"}, "Brown, Monica (sales)", NAME),
        ({"first_name": "Monica", "last_name": "Brown"}, "signed Monica J. Brown", NAME),
        ({"first_name": "Monica", "last_name": "Brown"}, "BROWN, MONICA", NAME),
        ({"first_name": "Wei", "last_name": "Li"}, "owner: Wei Li", NAME),
        ({"first_name": "Wei", "last_name": "Li"}, "owner: Li Wei", NAME),
        ({"first_name": "Jean-Luc", "last_name": "Picard"}, "Captain Jean-Luc Picard", NAME),
        ({"first_name": "Mary Ann", "last_name": "O'Neil"}, "Mary Ann O'Neil called", NAME),
        ({"username": "wl7"}, "assigned to wl7.", IDENTITY),
        ({"username": "j.li"}, "by j.li", IDENTITY),
        ({"username": "mbrown"}, "by MBrown", IDENTITY),
    ],
)
def test_a_real_identity_value_is_found_as_people_write_it(user, text, found):
    assert _remembering(**user).text_holds(text) == found


@pytest.mark.parametrize(
    ("user", "text"),
    [
        ({"first_name": "Will", "last_name": "Smith"}, "the smith will come"),  # lower case: a sentence
        ({"first_name": "Will", "last_name": "Smith"}, "Will and Smith"),
        ({"first_name": "Wei", "last_name": "Li"}, "Wei"),  # a single word alone is too common
        ({"first_name": "Monica", "last_name": "Brown"}, "monica a brown"),  # "a" is no initial
        ({"first_name": "Al", "last_name": "B"}, "Al B"),  # too short a pair
        ({"username": "ann"}, "ann and bob"),  # a short word of letters is a common word or name
    ],
)
def test_common_words_are_not_taken_for_a_real_identity_value(user, text):
    assert _remembering(**user).text_holds(text) is None


# --- end to end -------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("on_the_server", [True, False])
def test_a_phone_in_a_kept_column_fails_the_export_and_writes_nothing(tmp_path, monkeypatch, on_the_server):
    if not on_the_server:
        monkeypatch.setattr(PostgreSQLData, "supports_sql_masking", False)  # row by row
    _entry("call (842)964-8658")
    state, target = fingerprint(), tmp_path / "x.jsonl"
    with pytest.raises(PersonalDataFound, match=r"dictionary_entries record 1, field 'value' holds a phone number"):
        export_data(entities="dictionaries", output=target, fmt="jsonl", anonymize=True)
    assert list(tmp_path.iterdir()) == [] and fingerprint() == state


@pytest.mark.django_db
def test_a_card_number_inside_a_kept_json_column_fails_the_export(tmp_path, settings):
    _with_rules(settings, "audit_logs", changes="keep")
    AuditLog.objects.create(
        action="update", entity_type="core.order", timestamp=datetime(2025, 1, 2, tzinfo=UTC),
        changes={"card": 4111111111111111},
    )  # fmt: skip
    with pytest.raises(PersonalDataFound, match=r"audit_logs record 1, field 'changes' holds a card number"):
        export_data(entities="audit_logs", output=tmp_path / "x.jsonl", fmt="jsonl", anonymize=True)
    assert list(tmp_path.iterdir()) == []
