"""The masking rules an entity declares per field (`anonymize` in DBOPS["ENTITIES"], or a model's
`dbops_anonymize` class attribute), as PostgreSQL Anonymizer's labels or Greenmask's config do:

    keep                 the value is not personal data: exported as it is (and scanned for personal data)
    fake:<kind>          a consistent fake: username, first_name, last_name, name, email, phone, ip, text,
                         filename, filepath (the person kinds of one record derive from one pseudonym)
    hash                 a keyed hash of the value (hex, as long as the column allows)
    mask                 the first character kept, the rest replaced by '*'
    null                 the empty value of the column's kind ('' for text, {} or [] for JSON), NULL for any
                         other kind; a NULL stays NULL
    generalize:<kind>    month or year (dates and times to the start of it), range:<width> (numbers to
                         the lower end of their range, e.g. range:10 makes 37 into 30)

The names of the first rules ("email", "last_name", "clear"...) are still read: `fake:email`, `null`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

KEEP = "keep"
FAKE_KINDS = ("username", "first_name", "last_name", "name", "email", "phone", "ip", "text", "filename", "filepath")
PERSON_KINDS = frozenset({"username", "first_name", "last_name", "name", "email"})  # one pseudonym per record
GENERALIZE_KINDS = ("month", "year", "range:<width>")
RULE_KINDS = (KEEP, *(f"fake:{kind}" for kind in FAKE_KINDS), "hash", "mask", "null",
              *(f"generalize:{kind}" for kind in GENERALIZE_KINDS))  # fmt: skip
LEGACY_NAMES = {**{kind: f"fake:{kind}" for kind in FAKE_KINDS}, "clear": "null"}
_TEXT_TYPES = (models.CharField, models.TextField)
_DATE_TYPES = (models.DateField,)  # DateTimeField is a DateField
_NUMBER_TYPES = (models.IntegerField, models.FloatField, models.DecimalField)


class RuleError(ValueError):
    """A rule that does not exist, or does not fit its field."""


@dataclass(frozen=True)
class Rule:
    kind: str  # keep, fake, hash, mask, null, generalize
    argument: str = ""  # the fake kind, the generalization

    def __str__(self) -> str:
        return f"{self.kind}:{self.argument}" if self.argument else self.kind

    @property
    def keeps(self) -> bool:
        return self.kind == KEEP


def rule_parse(text: str) -> Rule:
    """`fake:email` into Rule("fake", "email"); RuleError naming the rules that exist."""
    if not isinstance(text, str):
        raise RuleError(f"{text!r} is not a rule")
    text = LEGACY_NAMES.get(text.strip(), text.strip())
    kind, _, argument = text.partition(":")
    if kind in (KEEP, "hash", "mask", "null") and not argument:
        return Rule(kind)
    if kind == "fake" and argument in FAKE_KINDS:
        return Rule(kind, argument)
    if kind == "generalize" and argument in ("month", "year"):
        return Rule(kind, argument)
    if kind == "generalize" and argument.startswith("range:") and argument[6:].isdigit() and int(argument[6:]) > 0:
        return Rule(kind, argument)
    raise RuleError(f"unknown rule {text!r}; rules: {', '.join(RULE_KINDS)}")


def rule_misfit(rule: Rule, model_field: models.Field) -> str | None:
    """Why the rule cannot apply to this field (None when it can)."""
    kind, argument = rule.kind, rule.argument
    text_like = isinstance(model_field, _TEXT_TYPES)
    if kind == "fake" and argument == "ip":
        fits = text_like or isinstance(model_field, models.GenericIPAddressField)
    elif kind in ("fake", "hash", "mask"):
        fits = text_like
    elif kind == "null":
        fits = model_field.null or text_like or isinstance(model_field, models.JSONField)
    elif kind == "generalize":
        kinds = _NUMBER_TYPES if argument.startswith("range:") else _DATE_TYPES
        fits = isinstance(model_field, kinds) and not model_field.is_relation
    else:
        fits = True
    if fits:
        return None
    return f"rule {rule} does not fit {model_field.name!r} ({model_field.get_internal_type()})"


def needs_rule(model_field: models.Field) -> bool:
    """Every free-text column needs a rule before an anonymized export (a column of fixed choices is
    not free text); so do columns that hold addresses or structured data, and a text primary key (a
    session key, an email as key: `keep` it consciously, or mask it and its references with it)."""
    if model_field.is_relation:
        return False
    if model_field.primary_key:
        return isinstance(model_field, _TEXT_TYPES)
    free_text = isinstance(model_field, _TEXT_TYPES) and not model_field.choices
    return free_text or isinstance(model_field, models.JSONField | models.GenericIPAddressField)
