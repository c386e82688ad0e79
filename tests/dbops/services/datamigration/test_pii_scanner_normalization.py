"""The personal-data scanner against personal data written to slip past it: hidden or look-alike characters
(a zero-width space, a fullwidth @ or digit, a no-break space, an en dash), an encoding (%40, &#64;, HTML
tags), separators the plain patterns did not take, real names spelled with an accent more or less or joined
into one word, and identities whose letters change when lowercased (İlker). Also that the identities stay
remembered past a million values."""

from __future__ import annotations

import pytest

from dbops.exceptions import PersonalDataFound
from dbops.services.datamigration.entities import ENTITIES
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.pii_scan import PiiScanner, personal_data_in
from multipult.core.models import User
from tests.dbops.services.datamigration.test_masking import _entry
from tests.dbops.services.datamigration.test_pii_scanner import (
    CARD,
    IBAN,
    IDENTITY,
    NAME,
    NATIONAL_ID,
    PHONE,
    _remembering,
)

EMAIL = "an email address"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # hidden and look-alike characters
        ("mail alice\u200b@example.com", EMAIL),
        ("alice\uff20example.com", EMAIL),
        ("card \uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11", CARD),
        ("card 4111\u00a01111\u00a01111\u00a01111", CARD),
        ("call +44\u00a020\u00a07946\u00a00958", PHONE),
        ("call 415\u2013555\u20132671", PHONE),
        ("iban GB82\u00a0WEST\u00a01234\u00a05698\u00a07654\u00a032", IBAN),
        ("ssn 078\u201305\u20131120", NATIONAL_ID),
        # encodings
        ("alice%40example.com", EMAIL),
        ("alice&#64;example.com", EMAIL),
        ("call <b>415</b>-555-2671", PHONE),
        # separators and shapes the patterns did not take
        ("GB82-WEST-1234-5698-7654-32", IBAN),
        ("ssn 078051120", NATIONAL_ID),
        ("SSN: 078051120", NATIONAL_ID),
        ("social security number 078 05 1120", NATIONAL_ID),
        ("ni AB-12-34-56-C", NATIONAL_ID),
        ("call 842 964-8658", PHONE),
    ],
)
def test_personal_data_hidden_by_characters_encodings_or_separators_is_found(text, found):
    assert personal_data_in(text) == found


@pytest.mark.parametrize(
    "text",
    [
        "id 078051120",  # nine digits without an SSN keyword are an id
        "ssn_field 07805112",  # eight digits
        "100% sure & done",
        "a < b and c > d",
        "Caf\u00e9 cr\u00e8me \u2013 12\u00a0\u20ac",
        "version 1.2.3.400",  # an octet past 255 is no address
        "order 4111\u00a01111\u00a01111\u00a01112",  # fails Luhn however it is spaced
        # ordinary catalogue and release text a probe found refused (a refusal stops the whole export)
        "Waist 28 30-32-34-36",  # a size run: two separators, not a phone's 3-3-4 shape
        "Torque 20 25-30-35-40 Nm",
        "Pages 1234 567-890",
        "Item 2024 1234-5678",
        "<tr><td>2</td><td>123456789</td></tr>",  # table cells stay apart
        "<ul><li>Size 4</li><li>805551234 units</li></ul>",
        "Build 24.01.15.01",  # zero-padded parts: a build or version number, not an address
        "Firmware 01.00.00.05",
    ],
)
def test_ordinary_values_still_pass_after_normalization(text):
    assert personal_data_in(text) is None


MONICA = {"first_name": "Monica", "last_name": "Brown"}


@pytest.mark.parametrize(
    ("user", "text", "found"),
    [
        # a real name spelled slightly differently
        (MONICA, "by M\u00f3nica Brown", NAME),
        (MONICA, "by MonicaBrown", NAME),
        (MONICA, "by monicabrown", NAME),
        (MONICA, "by Mon\u200bica Brown", NAME),
        (MONICA, "by \uff2donica Brown", NAME),
        (MONICA, "by Monica&nbsp;Brown", NAME),
        (MONICA, "by <b>Monica</b> Brown", NAME),
        ({"first_name": "Jos\u00e9", "last_name": "West"}, "by Jose\u0301 West", NAME),
        ({"first_name": "Jose\u0301", "last_name": "West"}, "by Jos\u00e9 West", NAME),
        # letters that change when lowercased, a username ending in a full stop, an email's local part
        ({"first_name": "\u0130lker", "last_name": "\u015eahin"}, "by \u0130lker \u015eahin", NAME),
        ({"username": "\u0130lker77"}, "by \u0130lker77", IDENTITY),
        ({"username": "rcl77."}, "ask rcl77. today", IDENTITY),
        ({"username": "rcl77."}, "ask rcl77 today", IDENTITY),
        ({"email": "reg.private.box@gmail.com"}, "write to reg.private.box at gmail dot com", IDENTITY),
        ({"email": "reg.private.box@gmail.com"}, "reg.private.box@gmail", IDENTITY),
    ],
)
def test_a_real_identity_value_is_found_however_it_is_spelled(user, text, found):
    assert _remembering(**user).text_holds(text) == found


@pytest.mark.parametrize(
    ("user", "text"),
    [
        ({"email": "info@realmail.test"}, "for info write to us"),  # a common local part is no identity
        ({"email": "contact@realmail.test"}, "contact us"),
        ({"email": "jo.b@realmail.test"}, "jo.b"),  # too short to stand for someone
        ({"first_name": "Will", "last_name": "Smith"}, "the smith will come"),
        ({"first_name": "Al", "last_name": "Bee"}, "albee"),  # a short joined pair is too common a word
        # an account name that is a plain word: a role's, a mailbox's or the user's own first name
        ({"username": "admin"}, "Full access for the admin role"),
        ({"username": "editor"}, "editor"),
        ({"email": "finance@realmail.test"}, "Approves finance reports."),
        ({"email": "devops@realmail.test"}, "devops pipeline"),
        ({"email": "jennifer@realmail.test", "first_name": "Jennifer", "last_name": "Hale"}, "Ask Jennifer."),
        ({"username": "michael", "first_name": "Michael", "last_name": "Reyes"}, "Michael said so"),
    ],
)
def test_common_words_are_still_not_taken_for_a_real_identity_value(user, text):
    assert _remembering(**user).text_holds(text) is None


def test_identities_past_a_million_are_still_remembered():
    scanner = PiiScanner()
    scanner.prepare(ENTITIES["users"])
    for index in range(1_000_001):
        scanner.remember("users", {"username": f"user{index}", "first_name": "", "last_name": "", "email": ""})
    scanner.remember("users", {"username": "zk.last", "first_name": "", "last_name": "", "email": ""})
    assert scanner.text_holds("by zk.last") == IDENTITY


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "found"),
    [("mail alice\u200b@example.com", "an email address"), ("by M\u00f3nica Brown", "a real person's name")],
)
def test_an_obfuscated_value_in_a_kept_column_fails_the_export(tmp_path, value, found):
    User.objects.create(username="mbrown.real", first_name="Monica", last_name="Brown", email="mb@realmail.test")
    _entry(value)
    with pytest.raises(PersonalDataFound, match=rf"dictionary_entries record 1, field 'value' holds {found}"):
        export_data(entities="users,dictionaries", output=tmp_path / "x.jsonl", fmt="jsonl", anonymize=True)
    assert list(tmp_path.iterdir()) == []
