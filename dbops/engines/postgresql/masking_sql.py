"""The masking rules an anonymized export can apply on the server, as SQL expressions over a column:
keep, null, hash, fake:ip and generalize:month|year. Each gives exactly what the Python rule gives
(dbops.services.datamigration.anonymization): the keyed hash is the same HMAC-SHA256, built from
PostgreSQL's sha256() with the key's inner and outer pads passed as parameters.
"""

from __future__ import annotations

import hashlib

_BLOCK = 64  # SHA-256's block size, for the HMAC pads


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _digest(text_sql: str, kind: str, pads: tuple[bytes, bytes]) -> tuple[str, list]:
    """HMAC-SHA256(key, kind NUL text) as bytea, as Anonymizer.digest computes it."""
    inner, outer = pads
    sql = "sha256(%s::bytea || sha256(%s::bytea || convert_to(" + text_sql + ", 'UTF8')))"
    return sql, [outer, inner + kind.encode() + b"\0"]


def masked_column(ref: str, *, rule: str, field_type: str, pads: tuple[bytes, bytes]) -> tuple[str, list] | None:
    """(SQL, parameters) of the rule applied to column `ref`, or None when the server cannot apply it.
    `field_type`: text, json, inet, datetime, date or other. NULL and '' stay as they are, as in Python."""
    if rule == "keep":
        return ref, []
    if rule == "null":
        if field_type == "text":
            return f"CASE WHEN {ref} IS NULL THEN NULL ELSE '' END", []
        if field_type == "json":  # {} for an object, [] for a list, "" for a string, JSON null kept, else NULL
            return (
                f"CASE jsonb_typeof({ref}) WHEN 'object' THEN '{{}}'::jsonb WHEN 'array' THEN '[]'::jsonb "
                f"WHEN 'string' THEN '\"\"'::jsonb WHEN 'null' THEN {ref} ELSE NULL END"
            ), []
        return "NULL", []
    if rule == "hash" and field_type == "text":
        digest, params = _digest(ref, "hash", pads)
        return f"CASE WHEN {ref} IS NULL OR {ref} = '' THEN {ref} ELSE left(encode({digest}, 'hex'), 32) END", params
    if rule == "fake:ip" and field_type == "inet":
        # The value's text as Python reads it: no /32 or /128 on a single address.
        text = f"CASE WHEN masklen({ref}) = CASE family({ref}) WHEN 4 THEN 32 ELSE 128 END THEN host({ref}) ELSE {ref}::text END"  # noqa: E501
        digest, params = _digest(text, "ip", pads)
        v4 = " || '.' || ".join(f"get_byte({digest}, {i})" for i in range(3))
        v6 = f"host(regexp_replace('fd' || encode(substr({digest}, 1, 15), 'hex'), '(.{{4}})(?!$)', '\\1:', 'g')::inet)"
        sql = f"CASE WHEN {ref} IS NULL THEN NULL WHEN family({ref}) = 4 THEN '10.' || {v4} ELSE {v6} END"
        return sql, params * 4  # the digest appears four times
    if rule in ("generalize:month", "generalize:year"):
        unit = rule.partition(":")[2]
        if field_type == "datetime":  # the month (year) of the UTC time, as the ORM's aware UTC values give
            return f"(date_trunc('{unit}', {ref} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')", []
        if field_type == "date":
            return f"date_trunc('{unit}', {ref})::date", []
    return None
