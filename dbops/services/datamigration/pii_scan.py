"""The value scanner of anonymized exports: after the rules, every string an export keeps as it is (a
`keep` column, and every string inside a kept JSON value) is searched for personal data: email
addresses, phone numbers, national id numbers (US SSN, UK NI), card numbers (with the Luhn check),
IBANs (with their mod-97 check), IP addresses, and the real values of the identity columns masked
earlier in the same export (a user's real name, username or email in a concept's description).

Values a rule produced are the rule's own output (fake, hash, mask...) and are not searched again.
A hit fails the export naming the entity, record and field; `allow` accepts named fields consciously.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from dbops.exceptions import PersonalDataFound
from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.masking_rules import PERSON_KINDS

_PATTERN = re.compile(
    r"(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
    r"|(?P<ssn>(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-]))"
    r"|(?P<ni>(?<!\w)[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D](?!\w))"
    r"|(?P<iban>(?<!\w)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?!\w))"
    r"|(?P<card>(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w.-]))"
    r"|(?P<ipv4>(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]))"
    r"|(?P<ipv6>(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]))"
    r"|(?P<phone>(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){2,4}(?![\w]))"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MIGHT_HOLD = re.compile(r"[\d@]|[A-Z]{2}")  # most text holds none: the full search is skipped
_WORD = re.compile(r"[\w.+@-]+")
_NAME_WORD = re.compile(r"[^\W\d_]+")
MAX_REMEMBERED = 1_000_000  # real identity values kept for the search (a bounded set: memory stays flat)
_WHAT = {"email": "an email address", "ssn": "a national id number", "ni": "a national id number",
         "iban": "an IBAN", "card": "a card number", "ipv4": "an IP address", "ipv6": "an IP address",
         "phone": "a phone number"}  # fmt: skip


def _luhn(digits: str) -> bool:
    total, double = 0, False
    for char in reversed(digits):
        number = int(char) * (2 if double else 1)
        total += number - 9 if number > 9 else number
        double = not double
    return total % 10 == 0


def _iban(text: str) -> bool:
    compact = text.replace(" ", "")
    moved = compact[4:] + compact[:4]
    return len(compact) >= 15 and int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def _real(kind: str, text: str) -> bool:
    """Whether a candidate is what its pattern is after the checks a regex cannot make."""
    if kind == "card":
        digits = re.sub(r"\D", "", text)
        return 13 <= len(digits) <= 19 and _luhn(digits)
    if kind == "iban":
        return _iban(text)
    if kind in ("ipv4", "ipv6"):
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return False
        return kind == "ipv4" or text.count(":") >= 2 and any(c.isalnum() for c in text)
    if kind == "phone":  # nine digits at least, and not a date with a time after it
        return len(re.sub(r"\D", "", text)) >= 9 and not _DATE.match(text)
    return True


def personal_data_in(text: str) -> str | None:
    """What personal data the text holds (by pattern), or None."""
    if not _MIGHT_HOLD.search(text):
        return None
    for match in _PATTERN.finditer(text):
        kind = match.lastgroup
        if _real(kind, match.group(0)):
            return _WHAT[kind]
    return None


def _strings(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class PiiScanner:
    """Remembers the real identity values of one export as the rules mask them, and searches what the
    export keeps as it is."""

    def __init__(self, *, allow: Iterable[str] = ()) -> None:
        self.allow = frozenset(allow)
        self.identities: set[int] = set()  # hashes of lowercased real values (names, usernames, emails)
        self.identity_fields: dict[str, list[tuple[str, str]]] = {}
        self.scanned_fields: dict[str, list[str]] = {}
        self.strings = 0

    def prepare(self, entity: Entity) -> None:
        rules = entity.anonymize
        self.identity_fields[entity.name] = [
            (name, rule.argument)
            for name, rule in rules.items()
            if rule.kind == "fake" and rule.argument in PERSON_KINDS
        ]
        self.scanned_fields[entity.name] = [
            f.name for f in entity.fields
            if f.name in rules and rules[f.name].keeps
            and f.name not in self.allow and f"{entity.name}.{f.name}" not in self.allow
        ]  # fmt: skip

    def remember(self, entity: str, record: dict) -> None:
        """Before the rules: the real values of the record's identity columns."""
        fields = self.identity_fields.get(entity)
        if not fields or len(self.identities) >= MAX_REMEMBERED:
            return
        first = last = None
        for name, kind in fields:
            value = record.get(name)
            if not isinstance(value, str) or len(value.strip()) < 3:
                continue
            value = value.strip().lower()
            if kind == "first_name":
                first = value
            elif kind == "last_name":
                last = value
            elif kind == "name" and " " in value:
                self.identities.add(hash(" ".join(value.split())))
            elif kind in ("username", "email") and len(value) >= 5:
                self.identities.add(hash(value))
        if first and last:  # a first name alone is too common a word to stand for someone
            self.identities.add(hash(f"{first} {last}"))

    def scan(self, entity: str, number: int, record: dict) -> None:
        """After the rules: raises PersonalDataFound for the first string that holds personal data."""
        for name in self.scanned_fields.get(entity, ()):
            for text in _strings(record.get(name)):
                self.strings += 1
                found = personal_data_in(text) or self._identity_in(text)
                if found:
                    raise PersonalDataFound(
                        f"{entity} record {number}, field {name!r} holds {found} after anonymization, so nothing "
                        f"was written. Give {entity}.{name} a masking rule, or accept what it holds consciously."
                    )

    def _identity_in(self, text: str) -> str | None:
        if not self.identities or len(text) < 3:
            return None
        lowered = text.lower()
        for word in _WORD.findall(lowered):
            if hash(word.strip(".-")) in self.identities:
                return "a real identity value (username or email) of this export"
        words = _NAME_WORD.findall(lowered)
        for first, last in zip(words, words[1:], strict=False):
            if hash(f"{first} {last}") in self.identities:
                return "a real person's name of this export"
        return None
