"""Deterministic anonymization for `export_data --anonymize`.

Every value goes through a keyed hash (HMAC-SHA256 with settings.ANONYMIZATION_SALT) of its kind and
value, so the same input gives the same fake value in every table and every run (joins still hold),
and nobody without the salt can map fakes back. Names come from Faker seeded with that hash, so they
look real; emails and usernames carry a slice of the hash, so they stay unique; phones are 555
numbers; free text is replaced or cleared. Passwords are never exported at all.

The project says what happens to each column: the `anonymize` rules of each entity declaration
(DBOPS["ENTITIES"], see dbops.services.datamigration.entities). A column that looks personal (by name or
type) and has no rule stops the export, naming the column: a new field cannot leak by default.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models

from dbops.exceptions import AnonymizationRuleMissing
from dbops.services.datamigration.entities import ENTITIES, KEEP, STRATEGIES, Entity

if TYPE_CHECKING:
    from faker import Faker

_PERSONAL_NAME = re.compile(
    r"(^|_)(e?mail|phone|mobile|tel|fax|name|username|surname|address|street|city|zip|postcode|ip|"
    r"birth|birthday|dob|ssn|passport|iban|note|notes|comment|comments|bio|message)(_|$)"
)
_PERSONAL_TYPES = (models.EmailField, models.GenericIPAddressField, models.TextField, models.JSONField)


def looks_personal(model_field: models.Field) -> bool:
    """Email, phone, name, address, IP, birth date or free text, judged by column name and type."""
    return isinstance(model_field, _PERSONAL_TYPES) or bool(_PERSONAL_NAME.search(model_field.name.lower()))


def missing_rules(selected: list[Entity]) -> list[str]:
    missing = []
    for entity in selected:
        rules = entity.anonymize
        missing += [f"{entity.name}.{f.name}" for f in entity.fields if looks_personal(f) and f.name not in rules]
    return missing


def check_rules(selected: list[Entity]) -> None:
    missing = missing_rules(selected)
    if missing:
        raise AnonymizationRuleMissing(
            "Refusing to export anonymized: these columns look like personal data and have no "
            f"anonymization rule: {', '.join(missing)}. Add a rule (or 'keep') for each to the entity's "
            "'anonymize' rules in DBOPS['ENTITIES'].",
            parameter="anonymize",
        )
    unknown = sorted({strategy for entity in selected for strategy in entity.anonymize.values()} - {*STRATEGIES, KEEP})
    if unknown:
        raise AnonymizationRuleMissing(f"Unknown anonymization strategies: {', '.join(unknown)}.")


class Anonymizer:
    STRATEGIES = STRATEGIES

    def __init__(self, salt: str | None = None) -> None:
        from faker import Faker  # imported on use: it is slow to import (start-up time)

        self.key = (salt or settings.ANONYMIZATION_SALT).encode()
        self.faker = Faker("en_US")
        self.cache: dict[tuple[str, object], object] = {}
        self.plans = {
            entity.name: [
                (name, getattr(self, f"_{strategy}"))
                for name, strategy in entity.anonymize.items()
                if strategy in STRATEGIES  # KEEP is not one; unknown ones are refused by check_rules
            ]
            for entity in ENTITIES.values()
        }

    def apply(self, entity: str, record: dict) -> dict:
        for name, strategy in self.plans.get(entity, ()):
            if name in record:
                value = record[name]
                if value is None or value == "":
                    continue  # nothing personal in an empty value; keeps NULL/blank semantics
                key = (name, value) if not isinstance(value, dict | list) else (name, repr(value))
                fake = self.cache.get(key)
                if fake is None:
                    fake = self.cache[key] = strategy(value)
                record[name] = fake
        return record

    # --- the keyed hash and the strategies -------------------------------------------------------

    def digest(self, kind: str, value) -> bytes:
        return hmac.new(self.key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    def _seeded(self, kind: str, value) -> tuple[Faker, str]:
        digest = self.digest(kind, value)
        self.faker.seed_instance(int.from_bytes(digest[:8], "big"))
        return self.faker, digest.hex()

    def _first_name(self, value) -> str:
        return self._seeded("first_name", value)[0].first_name()

    def _last_name(self, value) -> str:
        return self._seeded("last_name", value)[0].last_name()

    def _person(self, kind: str, value) -> tuple[str, str, str]:
        fake, hexdigest = self._seeded(kind, value)
        first, last = fake.first_name(), fake.last_name()
        return re.sub(r"[^a-z]", "", first.lower()), re.sub(r"[^a-z]", "", last.lower()), hexdigest

    def _username(self, value) -> str:
        first, last, hexdigest = self._person("username", value)
        return f"{first}.{last}.{hexdigest[:10]}"[:150]

    def _email(self, value) -> str:
        # The hash slice keeps distinct addresses distinct; example.com is reserved and never delivers.
        first, last, hexdigest = self._person("email", str(value).strip().lower())
        return f"{first}.{last}.{hexdigest[:12]}@example.com"

    def _phone(self, value) -> str:
        number = int.from_bytes(self.digest("phone", value)[:8], "big")
        return f"+1-555-{number % 900 + 100:03d}-{number // 1000 % 10000:04d}"

    def _ip(self, value) -> str:
        digest = self.digest("ip", value)
        if ipaddress.ip_address(str(value)).version == 6:
            return str(ipaddress.IPv6Address(b"\xfd" + digest[:15]))
        return str(ipaddress.IPv4Address(b"\x0a" + digest[:3]))  # 10.0.0.0/8: private, never a real client

    def _text(self, value) -> str:
        return self._seeded("text", value)[0].sentence(nb_words=8)

    def _clear(self, value):
        return {} if isinstance(value, dict) else [] if isinstance(value, list) else ""

    def _filename(self, value) -> str:
        suffix = re.search(r"\.[A-Za-z0-9]{1,8}$", str(value))
        return f"file-{self.digest('filename', value).hex()[:16]}{suffix.group(0) if suffix else ''}"

    def _filepath(self, value) -> str:
        suffix = re.search(r"\.[A-Za-z0-9]{1,8}$", str(value))
        return f"files/anonymized/{self.digest('filepath', value).hex()[:24]}{suffix.group(0) if suffix else ''}"
