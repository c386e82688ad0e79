"""Deterministic anonymization for `export_data --anonymize`.

The rules are declared per field (see masking_rules). Every fake derives from a keyed hash (HMAC-SHA256
with settings.ANONYMIZATION_SALT), so the same input gives the same fake in every table and every run
(joins still hold) and nobody without the salt can map fakes back.

Fakes are made of words picked by the hash from fixed word lists (fake_words/: names and lorem words
once taken from Faker's en_US lists), so the server can compute the very same fakes in SQL
(dbops/engines/postgresql/masking_sql.py) and an export gives the same file either way.

One fake person per real person: the person fields of a record (username, first and last name, full
name, email) all derive from one pseudonym, keyed by the record's email (exactly as written: addresses
that differ in case stay distinct people), else its username, else its primary key. A username that is
an email address becomes that address's fake email. Fake emails and usernames carry a slice of the hash
of their own value, so distinct values stay distinct (unique columns stay unique).

A column that needs a rule (every free-text column, and any whose name looks personal) and has none
stops the export, naming the column: a new field cannot leak by default.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import mimetypes
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import models

from dbops.exceptions import AnonymizationFailed, AnonymizationRuleMissing
from dbops.services.datamigration.entities import ENTITIES, Entity
from dbops.services.datamigration.masking_rules import PERSON_KINDS, Rule, needs_rule

_PERSONAL_NAME = re.compile(
    r"(^|_)(e?mail|phone|mobile|tel|fax|name|username|surname|address|street|city|zip|postcode|ip|"
    r"birth|birthday|dob|ssn|passport|iban|note|notes|comment|comments|bio|message)(_|$)"
)
MAX_CACHED = 100_000  # fakes (and pseudonyms) kept for values seen again
# Python's built-in table only: mimetypes.types_map grows with the machine's /etc/mime.types once anything
# calls mimetypes.init(), which would make the same file name's fake differ between processes and machines.
_KNOWN_EXTENSIONS = frozenset(extension.lower() for extension in mimetypes.MimeTypes().types_map[True])
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}$")
SPACES = " \t\n\r\x0b\x0c"  # what an address is stripped of (ASCII whitespace: the server strips the same)
TEXT_WORDS = 8  # words in a fake:text sentence
_WORD_LISTS = Path(__file__).with_name("fake_words")


@dataclass(frozen=True)
class Vocabulary:
    """What fakes are made of: first and last names, lorem words, the file extensions a name keeps."""

    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    words: tuple[str, ...]
    extensions: tuple[str, ...]


@functools.cache
def vocabulary() -> Vocabulary:
    def read(name: str) -> tuple[str, ...]:
        return tuple((_WORD_LISTS / f"{name}.txt").read_text().split())

    return Vocabulary(read("first_names"), read("last_names"), read("words"), tuple(sorted(_KNOWN_EXTENSIONS)))


def pick(words: tuple[str, ...], digest: bytes, at: int) -> str:
    """The word chosen by two bytes of a digest (masking_sql computes the same in SQL)."""
    return words[int.from_bytes(digest[at : at + 2], "big") % len(words)]


def looks_personal(model_field: models.Field) -> bool:
    """Free text, structured data or an address (see needs_rule), or a name that says personal data."""
    if model_field.is_relation:
        return False
    return needs_rule(model_field) or bool(_PERSONAL_NAME.search(model_field.name.lower()))


def missing_rules(selected: list[Entity]) -> list[str]:
    return [
        f"{entity.name}.{f.name}" for entity in selected for f in entity.fields
        if looks_personal(f) and f.name not in entity.anonymize
    ]  # fmt: skip


@dataclass(frozen=True)
class ColumnRule:
    entity: str
    field: str
    rule: str  # the rule's text, or "" when the column has none (and needs none)
    needed: bool  # a column that would be refused without a rule


def rules_explain(selected: list[Entity]) -> list[ColumnRule]:
    """The rule applied to every exported column, in export order (what `--explain` prints)."""
    return [
        ColumnRule(entity.name, f.name, str(entity.anonymize[f.name]) if f.name in entity.anonymize else "",
                   looks_personal(f))
        for entity in selected for f in entity.fields
    ]  # fmt: skip


def check_rules(selected: list[Entity]) -> None:
    missing = missing_rules(selected)
    if missing:
        raise AnonymizationRuleMissing(
            "Refusing to export anonymized: these columns hold free text or look like personal data and have "
            f"no anonymization rule: {', '.join(missing)}. Add a rule (or 'keep') for each to the entity's "
            "'anonymize' rules in DBOPS['ENTITIES'].",
            parameter="anonymize",
        )


@dataclass(frozen=True)
class Pseudonym:
    first: str
    last: str

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z]", "", self.first.lower()) + "." + re.sub(r"[^a-z]", "", self.last.lower())


class Anonymizer:
    def __init__(self, salt: str | None = None) -> None:
        self.key = (salt or settings.ANONYMIZATION_SALT).encode()
        self.vocabulary = vocabulary()
        self.cache: dict[tuple[str, object], object] = {}
        self.people: dict[str, Pseudonym] = {}
        self.plans: dict[str, list[tuple[str, Rule, object]]] = {}
        self.person_keys: dict[str, tuple[str, ...]] = {}

    def _plan(self, entity: Entity) -> list[tuple[str, Rule, object]]:
        """The entity's rules as (field, rule, method), planned on first use: any registered entity (a model
        named `app_label.Model`, its rules in its Meta) as well as the declared ones."""
        plan = []
        for name, rule in entity.anonymize.items():
            if rule.keeps:
                continue
            plan.append((name, rule, getattr(self, f"_{rule.kind}")))
        kinds = {rule.argument: name for name, rule in entity.anonymize.items() if rule.kind == "fake"}
        self.person_keys[entity.name] = tuple(kinds[kind] for kind in ("email", "username") if kind in kinds)
        self.plans[entity.name] = plan
        return plan

    def person_key_fields(self, entity: Entity) -> tuple[str, ...]:
        """The fields a record's pseudonym is keyed by: its email, else its username (else its id)."""
        if entity.name not in self.plans:
            self._plan(entity)
        return self.person_keys[entity.name]

    def apply(self, entity: str, record: dict) -> dict:
        plan = self.plans.get(entity)
        if plan is None:
            plan = self._plan(ENTITIES[entity])
        person = None
        for name, rule, strategy in plan:
            if name not in record:
                continue
            value = record[name]
            if value is None or value == "":
                continue  # nothing personal in an empty value; keeps NULL/blank semantics
            if rule.argument in PERSON_KINDS:
                if person is None:  # before any person field is replaced, so it reads the real ones
                    person = self._person(entity, record)
                record[name] = self._person_field(rule.argument, value, person)
                continue
            key = (str(rule), value) if not isinstance(value, dict | list) else (str(rule), repr(value))
            fake = self.cache.get(key)
            if fake is None:
                if len(self.cache) >= MAX_CACHED:  # a bounded cache: memory stays flat on big tables
                    self.cache.clear()
                try:
                    fake = self.cache[key] = strategy(rule, value)
                except (ValueError, TypeError, ArithmeticError) as exc:
                    # The exception's own text would carry the real value into the terminal and the run log
                    raise AnonymizationFailed(
                        f"{entity}: rule {rule} of field {name!r} cannot apply to a stored value "
                        f"({type(exc).__name__}); nothing was written."
                    ) from None
            record[name] = fake
        return record

    # --- the keyed hash and the pseudonyms ---------------------------------------------------------

    def digest(self, kind: str, value) -> bytes:
        return hmac.new(self.key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    def pseudonym(self, key: str) -> Pseudonym:
        person = self.people.get(key)
        if person is None:
            digest = self.digest("person", key)
            names = self.vocabulary
            person = Pseudonym(pick(names.first_names, digest, 0), pick(names.last_names, digest, 2))
            if len(self.people) < MAX_CACHED:  # a bounded cache: memory stays flat on big tables
                self.people[key] = person
        return person

    def _person(self, entity: str, record: dict) -> Pseudonym:
        for name in self.person_keys.get(entity, ()):
            value = record.get(name)
            if value:
                return self.pseudonym(str(value).strip(SPACES))
        return self.pseudonym(f"{entity}:{record.get('id')}")

    def fake_email(self, value: str) -> str:
        # The hash slice keeps distinct addresses distinct; example.com is reserved and never delivers.
        address = str(value).strip(SPACES)
        return f"{self.pseudonym(address).slug}.{self.digest('email', address).hex()[:12]}@example.com"

    def _person_field(self, kind: str, value, person: Pseudonym) -> str:
        if kind == "email":
            return self.fake_email(value)
        if kind == "username":
            if "@" in str(value):  # a username that is an address: that address's pseudonym
                return self.fake_email(value)[:150]
            return f"{person.slug}.{self.digest('username', value).hex()[:10]}"[:150]
        if kind == "first_name":
            return person.first
        if kind == "last_name":
            return person.last
        return f"{person.first} {person.last}"

    # --- the rules (method `_<kind>`, called with the rule and a non-empty value) --------------------

    def _fake(self, rule: Rule, value):
        kind = rule.argument
        if kind == "phone":
            number = int.from_bytes(self.digest("phone", value)[:8], "big")
            return f"+1-555-{number % 900 + 100:03d}-{number // 1000 % 10000:04d}"
        if kind == "ip":
            digest = self.digest("ip", value)
            try:  # an address, with a netmask where an inet column holds one (as masking_sql reads it)
                version = ipaddress.ip_interface(str(value)).version
            except ValueError:
                version = 4  # text in a text column that is not an address: still an address's fake
            if version == 6:
                return str(ipaddress.IPv6Address(b"\xfd" + digest[:15]))
            return str(ipaddress.IPv4Address(b"\x0a" + digest[:3]))  # 10.0.0.0/8: private, never a real client
        if kind == "text":
            digest = self.digest("text", value)
            words = [pick(self.vocabulary.words, digest, 2 * index) for index in range(TEXT_WORDS)]
            return " ".join([words[0].capitalize(), *words[1:]]) + "."
        suffix = _known_suffix(str(value))
        if kind == "filename":
            return f"file-{self.digest('filename', value).hex()[:16]}{suffix}"
        return f"files/anonymized/{self.digest('filepath', value).hex()[:24]}{suffix}"

    def _hash(self, rule: Rule, value) -> str:
        return self.digest("hash", value).hex()[:32]

    def _mask(self, rule: Rule, value) -> str:
        text = str(value)
        return text[0] + "*" * min(len(text) - 1, 16)

    def _null(self, rule: Rule, value):
        return (
            {} if isinstance(value, dict) else [] if isinstance(value, list) else "" if isinstance(value, str) else None
        )

    def _generalize(self, rule: Rule, value):
        if rule.argument in ("month", "year"):
            if isinstance(value, str):
                value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
            start = {"day": 1} if rule.argument == "month" else {"month": 1, "day": 1}
            if isinstance(value, datetime):
                return value.replace(**start, hour=0, minute=0, second=0, microsecond=0)
            return value.replace(**start)
        width = int(rule.argument.removeprefix("range:"))
        number = Decimal(str(value))
        low = (number // width) * width - (width if number < 0 and number % width else 0)
        return type(value)(low) if isinstance(value, int | float) else low


def _known_suffix(name: str) -> str:
    """The file's extension when it is a known file type; anything else could be data (a name, an id)."""
    match = _SUFFIX.search(name)
    suffix = match.group(0).lower() if match else ""
    return suffix if suffix in _KNOWN_EXTENSIONS else ""
