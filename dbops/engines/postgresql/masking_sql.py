"""The masking rules an anonymized export can apply on the server, as SQL expressions over a column:
keep, null, hash, mask, fake (every kind) and generalize:month|year. Each gives exactly what the Python
rule gives (dbops.services.datamigration.anonymization): the keyed hash is the same HMAC-SHA256, built
from PostgreSQL's sha256() (core since 11) with the key's inner and outer pads, and a fake word is
picked from the same word list by the same two bytes of that hash.

Person fields (username, names) derive from one pseudonym per record: the caller computes the record's
person digest once as a column (`person_digest`) and passes its reference to `column`.

Constants are written into the SQL as literals (hex for bytes; the word lists hold ASCII letters only,
checked when they load), so the expressions carry no parameters and need no `%` escaping. Each digest a
rule uses more than once is computed once in a fenced subquery (OFFSET 0), not once per use.

The key is the exception: its pads would give the salt away to anyone who sees the statement text
(pg_stat_activity, the server log of a failing statement, auto_explain, an error's LINE excerpt). They
go into a temporary table of the session by COPY, whose data no log or view shows (KEY_TABLE, a row per
digest kind), and the SQL reads them from there: uncorrelated scalar subqueries, each computed once per
statement.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

_BLOCK = 64  # SHA-256's block size, for the HMAC pads
_SPACES = r"E' \t\n\r\x0b\x0c'"  # str.strip's ASCII whitespace, the set the Python rules strip
# Python's `\.[A-Za-z0-9]{1,8}$`, whose `$` also matches before a final newline
_SUFFIX = r"E'(\\.[A-Za-z0-9]{1,8})\\n?$'"
_WORD = re.compile(r"[A-Za-z]+")
_EXTENSION = re.compile(r"\.[a-z0-9]{1,8}")
TEXT_WORDS = 8  # words in a fake:text sentence (anonymization.TEXT_WORDS)
# Keeps the planner from folding a subquery into its caller, which would compute a digest once per use.
_FENCE = "OFFSET 0"


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _bytes(value: bytes) -> str:
    return f"decode('{value.hex()}', 'hex')"


def _checked(words, pattern: re.Pattern) -> list[str]:
    for word in words:
        if not pattern.fullmatch(word):
            raise ValueError(f"{word!r} cannot be a fake word")  # the literals below rely on it
    return list(words)


def _word_table(words) -> tuple[str, int, int]:
    """The words as one bytea of fixed-width slots (a slot is read in constant time; an array subscript
    walks the array), with the count and the width."""
    words = _checked(words, _WORD)
    width = max(map(len, words))
    return _bytes("".join(word.ljust(width) for word in words).encode()), len(words), width


KEY_TABLE = "pg_temp.dbops_masking_key"
# The kinds of keyed hash the rules take (Anonymizer.digest's first argument): one key row each, holding
# the inner pad with the kind already appended, so a digest concatenates no more per row than a literal did.
DIGEST_KINDS = ("hash", "person", "email", "username", "phone", "ip", "text", "filename", "filepath")
KEY_TABLE_CREATE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {KEY_TABLE.split('.')[1]} (kind text, inner_prefix bytea, outer_pad bytea)"
)
KEY_TABLE_COPY = f"COPY {KEY_TABLE} (kind, inner_prefix, outer_pad) FROM STDIN"
KEY_TABLE_DROP = f"DROP TABLE IF EXISTS {KEY_TABLE}"


def key_copy_text(key: bytes) -> str:
    """The rows of KEY_TABLE_COPY, in COPY's text format (bytea as \\x hex)."""
    inner, outer = hmac_pads(key)
    rows = []
    for kind in DIGEST_KINDS:
        prefix = inner + kind.encode() + b"\0"
        rows.append(f"{kind}\t\\\\x{prefix.hex()}\t\\\\x{outer.hex()}\n")
    return "".join(rows)


class MaskingSQL:
    """SQL of the masking rules for one fake vocabulary (`first_names`, `last_names`, `words`,
    `extensions`: sequences of str, as anonymization.Vocabulary) and the key loaded into KEY_TABLE."""

    def __init__(self, vocabulary: Any) -> None:
        self.first_names = _word_table(vocabulary.first_names)
        self.last_names = _word_table(vocabulary.last_names)
        self.words = _word_table(vocabulary.words)
        # '|.pdf|.txt|…|': a strpos finds a suffix in it faster than = ANY(array) compares each
        extensions = _checked([e for e in vocabulary.extensions if _EXTENSION.fullmatch(e)], _EXTENSION)
        self.extensions = "'|" + "|".join(extensions) + "|'"

    def digest(self, text_sql: str, kind: str) -> str:
        """HMAC-SHA256(key, kind NUL text) as bytea, as Anonymizer.digest computes it."""
        if kind not in DIGEST_KINDS:
            raise ValueError(f"no key row for digests of kind {kind!r}")
        pads = f"FROM {KEY_TABLE} WHERE kind = '{kind}'"
        return f"sha256((SELECT outer_pad {pads}) || sha256((SELECT inner_prefix {pads}) || convert_to({text_sql}, 'UTF8')))"  # noqa: S608, E501

    @staticmethod
    def _pick(words: tuple[str, int, int], digest_sql: str, at: int) -> str:
        """The word at uint16 (bytes at, at+1 of the digest) mod the list's length, as anonymization.pick."""
        table, size, width = words
        index = f"mod(get_byte({digest_sql}, {at}) * 256 + get_byte({digest_sql}, {at + 1}), {size})"
        return f"rtrim(convert_from(substring({table} from {index} * {width} + 1 for {width}), 'UTF8'))"

    def _slug(self, person_sql: str) -> str:
        """first.last of the pseudonym with this person digest (the names are ASCII letters: lower() is
        Python's slug)."""
        return f"lower({self._pick(self.first_names, person_sql, 0)}) || '.' || lower({self._pick(self.last_names, person_sql, 2)})"  # noqa: E501

    def person_digest(self, key_refs: list[str], fallback_sql: str) -> str:
        """The record's person digest: of its first non-empty key column (stripped), else of `fallback_sql`
        (e.g. 'users:' || id), as Anonymizer._person chooses it."""
        branches = " ".join(f"WHEN {ref} IS NOT NULL AND {ref} <> '' THEN btrim({ref}, {_SPACES})" for ref in key_refs)
        key_sql = f"CASE {branches} ELSE {fallback_sql} END" if key_refs else fallback_sql
        return self.digest(key_sql, "person")

    def _fake_email(self, ref: str) -> str:
        stripped = f"btrim({ref}, {_SPACES})"
        digests = f"{self.digest(stripped, 'person')} AS person, {self.digest(stripped, 'email')} AS email"
        slug = self._slug("h.person")
        return f"(SELECT {slug} || '.' || left(encode(h.email, 'hex'), 12) || '@example.com' FROM (SELECT {digests} {_FENCE}) AS h)"  # noqa: S608, E501

    def column(self, ref: str, *, rule: str, field_type: str, person: str | None = None) -> str | None:
        """SQL of the rule applied to column `ref`, or None when the server cannot apply it. `field_type`:
        text, json, inet, datetime, date or other; `person`: the SQL of the record's person digest (needed
        by username, first_name, last_name and name). NULL and '' stay as they are, as in Python."""
        if rule == "keep":
            return ref
        if rule == "null":
            if field_type == "text":
                return f"CASE WHEN {ref} IS NULL THEN NULL ELSE '' END"
            if field_type == "json":  # {} for an object, [] for a list, "" for a string, JSON null kept, else NULL
                return (
                    f"CASE jsonb_typeof({ref}) WHEN 'object' THEN '{{}}'::jsonb WHEN 'array' THEN '[]'::jsonb "
                    f"WHEN 'string' THEN '\"\"'::jsonb WHEN 'null' THEN {ref} ELSE NULL END"
                )
            return "NULL"
        if rule == "fake:ip" and field_type == "inet":
            return self._fake_ip(ref)
        if rule in ("generalize:month", "generalize:year"):
            unit = rule.partition(":")[2]
            if field_type == "datetime":  # the month (year) of the UTC time, as the ORM's aware UTC values give
                return f"(date_trunc('{unit}', {ref} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
            if field_type == "date":
                return f"date_trunc('{unit}', {ref})::date"
            return None
        masked = self._text(ref, rule, person) if field_type == "text" else None
        return None if masked is None else f"CASE WHEN {ref} IS NULL OR {ref} = '' THEN {ref} ELSE {masked} END"

    def _text(self, ref: str, rule: str, person: str | None) -> str | None:
        """The rule on a non-empty text value."""
        kind = rule.removeprefix("fake:")
        if rule == "hash":
            return f"left(encode({self.digest(ref, 'hash')}, 'hex'), 32)"
        if rule == "mask":
            return f"left({ref}, 1) || repeat('*', least(char_length({ref}) - 1, 16))"
        if rule == "fake:email":
            return self._fake_email(ref)
        if kind in ("first_name", "last_name", "name", "username") and person is not None:
            first, last = self._pick(self.first_names, person, 0), self._pick(self.last_names, person, 2)
            if kind == "username":  # an address: that address's fake email
                own = f"{self._slug(person)} || '.' || left(encode({self.digest(ref, 'username')}, 'hex'), 10)"
                return f"left(CASE WHEN strpos({ref}, '@') > 0 THEN {self._fake_email(ref)} ELSE {own} END, 150)"
            return {"first_name": first, "last_name": last, "name": f"{first} || ' ' || {last}"}[kind]
        if rule == "fake:phone":
            number = " + ".join(f"get_byte(h.d, {i})::numeric * {256 ** (7 - i)}" for i in range(8))
            phone = "'+1-555-' || (mod(k.n, 900) + 100)::text || '-' || lpad(mod(div(k.n, 1000), 10000)::text, 4, '0')"
            return f"(SELECT {phone} FROM (SELECT {number} AS n FROM (SELECT {self.digest(ref, 'phone')} AS d {_FENCE}) AS h {_FENCE}) AS k)"  # noqa: S608, E501
        if rule == "fake:text":
            words = [self._pick(self.words, "h.d", 2 * index) for index in range(TEXT_WORDS)]
            sentence = " || ' ' || ".join([f"initcap({words[0]})", *words[1:]])  # lowercase words: initcap = capitalize
            return f"(SELECT {sentence} || '.' FROM (SELECT {self.digest(ref, 'text')} AS d {_FENCE}) AS h)"  # noqa: S608
        if rule in ("fake:filename", "fake:filepath"):
            found = f"lower(substring({ref} from {_SUFFIX}))"
            suffix = f"CASE WHEN strpos({self.extensions}, '|' || {found} || '|') > 0 THEN {found} ELSE '' END"
            digest = self.digest(ref, kind)
            if kind == "filename":
                return f"'file-' || left(encode({digest}, 'hex'), 16) || {suffix}"
            return f"'files/anonymized/' || left(encode({digest}, 'hex'), 24) || {suffix}"
        return None

    def _fake_ip(self, ref: str) -> str:
        # The value's text as Python reads it: no /32 or /128 on a single address.
        text = f"CASE WHEN masklen({ref}) = CASE family({ref}) WHEN 4 THEN 32 ELSE 128 END THEN host({ref}) ELSE {ref}::text END"  # noqa: E501
        v4 = " || '.' || ".join(f"get_byte(h.d, {i})" for i in range(3))
        v6 = "host(regexp_replace('fd' || encode(substr(h.d, 1, 15), 'hex'), '(.{4})(?!$)', '\\1:', 'g')::inet)"
        fake = f"(SELECT CASE WHEN family({ref}) = 4 THEN '10.' || {v4} ELSE {v6} END FROM (SELECT {self.digest(text, 'ip')} AS d {_FENCE}) AS h)"  # noqa: S608, E501
        return f"CASE WHEN {ref} IS NULL THEN NULL ELSE {fake} END"
