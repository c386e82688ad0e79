"""Per-record transformations applied during export or import (`--transform NAME`, repeatable).

A transformation takes the entity name and one record (a dict keyed by field name) and returns the
record to keep (changed or not) or None to drop it. Values are as the file or the database hold them:
a number with a fraction or an exponent is a Decimal (read exactly; `float(value)` for float arithmetic),
dates and times are ISO text on import. One that raises stops the run with its name and the record,
and nothing is written. Register one with the decorator in any module
that is imported at start-up (e.g. your app's `apps.py` `ready()`):

    from dbops.services.datamigration.transformations import transformation

    @transformation("uppercase_codes")
    def uppercase_codes(entity: str, record: dict) -> dict:
        if entity == "concepts":
            record["code"] = record["code"].upper()
        return record
"""

from __future__ import annotations

from collections.abc import Callable

from dbops.exceptions import DataMigrationError, TransformationFailed

Transformation = Callable[[str, dict], dict | None]

_REGISTRY: dict[str, Transformation] = {}


def transformation(name: str) -> Callable[[Transformation], Transformation]:
    """Registers `function` under `name`; a name can be registered once."""

    def register(function: Transformation) -> Transformation:
        if name in _REGISTRY and _REGISTRY[name] is not function:
            raise ValueError(f"transformation {name!r} is already registered")
        _REGISTRY[name] = function
        return function

    return register


def transformation_names() -> list[str]:
    return sorted(_REGISTRY)


def resolve_transformations(names: list[str] | None) -> list[Transformation]:
    unknown = [name for name in names or [] if name not in _REGISTRY]
    if unknown:
        raise DataMigrationError(
            f"Unknown transformation(s): {', '.join(unknown)}. Available: {', '.join(transformation_names())}."
        )
    return [_REGISTRY[name] for name in names or []]


def apply_transformations(
    transformations: list[Transformation], entity: str, record: dict, *, number: int
) -> dict | None:
    """The record as the transformations leave it, or None when one drops it. A transformation that
    raises or returns something else is one TransformationFailed naming it and the record (`number`)."""
    for function in transformations:
        try:
            record = function(entity, record)
        except Exception as exc:
            raise TransformationFailed(
                f"Transformation {_name(function)} failed on {entity} record {number}: {type(exc).__name__}: {exc}"
            ) from exc
        if record is None:
            return None
        if not isinstance(record, dict):
            raise TransformationFailed(
                f"Transformation {_name(function)} returned {type(record).__name__} for {entity} record {number}; "
                "a transformation returns the record (a dict) or None to drop it."
            )
    return record


def _name(function: Transformation) -> str:
    return next((repr(name) for name, registered in _REGISTRY.items() if registered is function), repr(function))


# --- built in ---------------------------------------------------------------------------------------


@transformation("split_full_name")
def split_full_name(entity: str, record: dict) -> dict:
    """users: a `full_name` (or `name`) field from another system becomes first_name + last_name."""
    if entity != "users":
        return record
    full_name = record.pop("full_name", None)
    if full_name is None and "first_name" not in record:
        full_name = record.pop("name", None)
    if full_name is not None:
        first, _, last = str(full_name).strip().partition(" ")
        record["first_name"], record["last_name"] = first, last.strip()
    return record


@transformation("normalize_emails")
def normalize_emails(entity: str, record: dict) -> dict:
    """users: renames `mail` to `email`, then trims and lower-cases every email."""
    if entity != "users":
        return record
    if "mail" in record and "email" not in record:
        record["email"] = record.pop("mail")
    if isinstance(record.get("email"), str):
        record["email"] = record["email"].strip().lower()
    return record
