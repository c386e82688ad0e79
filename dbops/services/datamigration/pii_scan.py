"""The value scanner of anonymized exports: after the rules, every string an export keeps as it is (a
`keep` column, and every string inside a kept JSON value) is searched for personal data:

- email addresses;
- phone numbers: international (+44 20 7946 0958, +442079460958, 0044 20 7946 0958, +33 6 12 34 56 78),
  with an area code in parentheses ((842)964-8658, (555) 123-4567), three to five groups of digits with
  one separator, or one after the first group and another after the rest (882-682-9888, 683.353.3740,
  842 964-8658), a 0-led national number in two groups (07911 123456) or in one (01614960978), ten plain
  digits shaped as a North American number (5767033452), each with an optional extension (x754);
- national id numbers: US SSN (078-05-1120, and 078051120 after "SSN" or "social security"), UK NI
  (AB 12 34 56 C, AB-12-34-56-C, ab123456c);
- card numbers: plain or in the groups cards are printed in, passing the Luhn check, and starting as
  payment cards do: 16 to 19 digits from 2 to 6, 14 or 15 from 3, 13 from 4 (not a product barcode);
- IBANs of the registry's countries at their country's length, passing the mod-97 check;
- IP addresses (IPv4, zero-padded octets too, and IPv6 of four hex digits at least: not ::1 or a slice's
  1::2);
- the real values of the identity columns masked earlier in the same export: a user's name ("Monica
  Brown", "Brown, Monica", "Monica J. Brown", "MonicaBrown"), username, email or an email's distinctive
  local part in a concept's description.

Case does not matter and a sentence's full stop may follow. Text that could hide something (not plain
ASCII, or holding a %, & or <) is searched a second time as a reader sees it: percent-decoded, HTML
entities unescaped and tags dropped, look-alike characters (fullwidth, no-break spaces, dashes) made
plain, invisible ones (zero-width spaces) and accents dropped. Identity values are remembered and
compared folded the same way ("Mónica" is "Monica", "İlker" is "ilker"). Whole numbers inside a kept JSON
value are checked as card numbers (other long integers are ids far more often than phones or SSNs). Every
search is linear in the length of the text: a candidate only starts where a run of its characters starts,
and its repetitions are bounded, so a megabyte of digits, dots or colons scans in about the time of a
megabyte of prose (about a second), where a restarting search would take hours.

Values a rule produced are the rule's own output (fake, hash, mask...) and are not searched again.
A hit fails the export naming the entity, record and field; `allow` accepts named fields consciously.
"""

from __future__ import annotations

import html
import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from decimal import Decimal
from urllib.parse import unquote

from django.db import models

from dbops.exceptions import PersonalDataFound
from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.masking_rules import PERSON_KINDS

# One pattern per kind, each searched on its own: a candidate of one kind that fails its check (a card
# number failing Luhn) leaves the same digits to the other kinds (a phone number).
_PATTERNS = {
    "email": re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "ssn": re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])"),
    # nine digits alone are an id far more often: an SSN only a few characters after its name
    "labelled ssn": re.compile(r"(?<![^\W\d_])(?:ssn|social[ -]?security)\D{0,16}\d{3}( ?)\d{2}\1\d{4}(?![\w-])", re.I),
    "ni": re.compile(r"(?<!\w)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][ -]?\d{2}[ -]?\d{2}[ -]?\d{2}[ -]?[A-D](?!\w)", re.I),
    "iban": re.compile(r"(?<!\w)[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?(?!\w)", re.I),
    "card": re.compile(
        r"(?<![\w.-])(?:\d{13,19}"
        r"|\d{4}(?P<sep>[ -])(?:\d{4}(?P=sep)\d{4}(?P=sep)\d{1,4}(?:(?P=sep)\d{3})?|\d{6}(?P=sep)\d{4,5}))"
        r"(?![\w-]|\.\w)"  # a full stop may end the sentence, not start a decimal part
    ),
    "ipv4": re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\w)"),  # 1.2.3.4.5 is a version
    "ipv6": re.compile(r"(?<![\w:])(?:[0-9A-F]{0,4}:){2,7}[0-9A-F]{0,4}(?![\w:])", re.I),
    "phone": re.compile(
        r"(?<![\w+.-])(?=\+|\(\d{1,5}\)|\d[\d .-]{8})"  # nine characters at least: short numbers are not tried
        r"(?P<country>(?:\+|00)[1-9]\d{0,2}(?:[ .-]?\(0\))?[ .-]?(?:\d{1,5} (?=\d))?)?"  # +44, 0044, +44 (0), +55 93
        r"(?P<area>\(\d{1,5}\)[ .-]?)?"
        # one separator throughout, or the area code's own first (842 964-8658)
        r"(?P<number>\d{1,12}+(?:(?P<sep>[ .-])\d{1,8}+(?:(?P<rest>[ .-])\d{1,8}+(?:(?P=rest)\d{1,8}+){0,3})?)?)"
        r"(?: ?(?:x|ext\.?) ?\d{1,6}+)?"
        r"(?![\w+]|[.-]\d)",
        re.I,
    ),
}
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip  # the IBAN registry's: a random token (a UUID's hex) seldom has its two letters' length
_CARD_STARTS = {13: "4", 14: "3", 15: "3"}
_NI_NEVER_ISSUED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_NOT_DIGIT = re.compile(r"\D")
_PHONE_SEPARATOR = re.compile(r"[ .-]")
_IBAN_SEPARATOR = re.compile(r"[ -]")
_DATE = re.compile(r"\d{4}[-.]\d{2}[-.]\d{2}")
_NORTH_AMERICAN = re.compile(r"[2-9]\d\d[2-9]\d{6}")  # area code and exchange never start with 0 or 1
_NATIONAL = re.compile(r"0[1-9]\d{8,9}")  # a trunk 0, then the area code (01614960978, 0147699205)
_MIGHT_HOLD = re.compile(r"[\d@:]")  # every kind holds a digit, an @ or colons: most text is skipped
_WORD = re.compile(r"[\w.+@-]+")
_NAME_WORD = re.compile(r"[^\W\d_]+")
_TAG = re.compile(r"</?([a-z][a-z0-9]*)[^<>]*>", re.I)
_INLINE_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "cite",
        "code",
        "data",
        "dfn",
        "em",
        "font",
        "i",
        "kbd",
        "mark",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "time",
        "u",
        "var",
        "wbr",
    }
)


def _tag_replacement(match: re.Match) -> str:
    return "" if match.group(1).lower() in _INLINE_TAGS else " "


# A username (or email) is remembered from 5 characters, or from 3 when not letters only ("wl7", "j.li"):
# a short word of letters ("ann", "mike") is a common word or first name, which would fail ordinary text.
MIN_USERNAME, MIN_MARKED_USERNAME = 5, 3
MIN_NAME_LETTERS = 4  # of a first and last name together: "Wei Li" is remembered, "Al B" is not
MIN_JOINED_NAME = 8  # a name written as one word ("monicabrown"); a shorter one ("albee") may be a word
MIN_LOCAL_PART = 6  # an email's local part alone ("reg.private.box"), when not letters only ("finance")
# Account names that are words of ordinary text (roles, shared mailboxes): never remembered as identities.
COMMON_ACCOUNT_WORDS = frozenset({
    "accounts", "admin", "administrator", "backup", "billing", "bookings", "careers", "contact", "demo",
    "deploy", "developer", "editor", "enquiries", "feedback", "guest", "helpdesk", "hostmaster", "inquiries",
    "invoices", "manager", "marketing", "monitor", "newsletter", "noreply", "notifications", "office",
    "operator", "orders", "owner", "postmaster", "privacy", "reception", "reviewer", "root", "security",
    "service", "staff", "superuser", "support", "sysadmin", "system", "tester", "viewer", "webmaster",
})  # fmt: skip
_WHAT = {"email": "an email address", "ssn": "a national id number", "labelled ssn": "a national id number",
         "ni": "a national id number", "iban": "an IBAN", "card": "a card number", "ipv4": "an IP address",
         "ipv6": "an IP address", "phone": "a phone number"}  # fmt: skip


def _luhn(digits: str) -> bool:
    total, double = 0, False
    for char in reversed(digits):
        number = int(char) * (2 if double else 1)
        total += number - 9 if number > 9 else number
        double = not double
    return total % 10 == 0


def _ean13(digits: str) -> bool:
    weighted = sum(int(char) * (3 if index % 2 else 1) for index, char in enumerate(digits[:12]))
    return (weighted + int(digits[12])) % 10 == 0


def _card(digits: str) -> bool:
    """Payment cards start with 2 to 6 (1, 7, 8, 9 are airlines, oil, telecoms, states), so a timestamp
    in milliseconds or a snowflake id (both start with 1) is not taken for one. The short lengths are
    the few cards that have them (old Visa, Diners, Amex), and a product barcode (EAN-13) is no card."""
    if not 13 <= len(digits) <= 19 or digits[0] not in _CARD_STARTS.get(len(digits), "23456"):
        return False
    return _luhn(digits) and not (len(digits) == 13 and _ean13(digits))


def _iban(text: str) -> bool:
    """At its country's length with the mod-97 check; words the pattern took after the number (a
    4-letter word after a short IBAN) are dropped one by one."""
    groups = _IBAN_SEPARATOR.split(text)
    for count in range(len(groups), 0, -1):
        compact = "".join(groups[:count]).upper()
        if _IBAN_LENGTHS.get(compact[:2]) == len(compact):
            moved = compact[4:] + compact[:4]
            if int("".join(str(int(char, 36)) for char in moved)) % 97 == 1:
                return True
    return False


def _phone(match: re.Match) -> bool:
    number, separator = match["number"], match["sep"]
    digits = _NOT_DIGIT.sub("", (match["country"] or "") + (match["area"] or "") + number)
    if len(set(digits)) < 3:
        return False  # a placeholder (555-555-5555, 00 00 00 00 00), not someone's number
    if match["country"]:
        digits = digits.removeprefix("00")  # the international prefix is not the number's
        spaced = separator is not None or not match["country"][-1].isdigit()
        return 9 <= len(digits) <= 15 and (spaced or not match["country"].startswith("00"))  # 00 + an id
    if not 9 <= len(digits) <= 15:  # nine digits at least, as E.164's national numbers have
        return False
    if match["area"]:
        return True
    groups = _PHONE_SEPARATOR.split(number)
    if match["rest"] and match["rest"] != separator:  # 842 964-8658; size runs (28 30-32-34) are not phones
        return [len(group) for group in groups] == [3, 3, 4] and bool(_NORTH_AMERICAN.fullmatch("".join(groups)))
    if len(groups) == 1:  # plain digits are ids far more often: a North American or a 0-led national shape
        return bool(_NORTH_AMERICAN.fullmatch(number) or _NATIONAL.fullmatch(number))
    if len(groups) == 2:  # a national number after its trunk 0, not a decimal number
        return number.startswith("0") and separator != "."
    if _DATE.search(number) or (len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:])):
        return False  # a date, or thousands grouped (1 234 567 890, 192.168.100.200)
    return all(len(group) >= 2 for group in groups[1:])  # not an ISBN's 978-3-16-148410-0


def _real(kind: str, match: re.Match) -> bool:
    """Whether a candidate is what its pattern is after the checks a regex cannot make."""
    text = match.group(0)
    if kind == "card":
        return _card(_NOT_DIGIT.sub("", text))
    if kind == "iban":
        return _iban(text)
    if kind == "ni":
        return text[:2].upper() not in _NI_NEVER_ISSUED
    if kind == "ipv4":  # a zero-padded octet (24.01.15.01) is a build or version number far more often
        return all(int(octet) <= 255 and (octet == "0" or not octet.startswith("0")) for octet in text.split("."))
    if kind == "ipv6":
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return False
        return sum(char != ":" for char in text) >= 4
    if kind == "phone":
        return _phone(match)
    return True


class _PlainCharacters(dict):
    """str.translate's table after NFKD, filled as characters are met: marks (accents) and format
    characters (a zero-width space) dropped, Unicode spaces made a space and dashes a hyphen."""

    def __missing__(self, code: int) -> int | str | None:
        char = chr(code)
        category = unicodedata.category(char)
        if code < 128:
            plain = code
        elif category[0] == "M" or category == "Cf":
            plain = None
        elif char.isspace() or category[0] == "Z":
            plain = " "
        elif category == "Pd" or char == "\u2212":  # and the minus sign
            plain = "-"
        else:
            plain = code
        self[code] = plain
        return plain


_PLAIN_CHARACTERS = _PlainCharacters()


def _plain_characters(text: str) -> str:
    """Look-alike characters as the ASCII they look like ("４" is "4", "Mónica" is "Monica")."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKD", text).translate(_PLAIN_CHARACTERS)


def _plain(text: str) -> str:
    """The text as a reader sees it: decoded, tags dropped, characters plain. Each step only where it
    can change something, so plain ASCII text (most values) is returned as it is, at no cost."""
    if "%" in text:
        text = unquote(text)
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:  # inline tags (<b>415</b>-555-2671) go, others (<td>2</td><td>123456789</td>) part words
        text = _TAG.sub(_tag_replacement, text)
    return _plain_characters(text)


def _forms(text: str) -> tuple[str, ...]:
    """The text as written, and as a reader sees it where that differs."""
    plain = _plain(text)
    return (text,) if plain == text else (text, plain)


def _fold(text: str) -> str:
    """A value as remembered and as compared: plain characters, case folded ("İlker" is "ilker")."""
    return _plain_characters(text).casefold()


def _pattern_in(text: str) -> str | None:
    if not _MIGHT_HOLD.search(text):
        return None
    for kind, pattern in _PATTERNS.items():
        for match in pattern.finditer(text):
            if _real(kind, match):
                return _WHAT[kind]
    return None


def personal_data_in(text: str) -> str | None:
    """What personal data the text holds (by pattern), or None."""
    for form in _forms(text):
        found = _pattern_in(form)
        if found:
            return found
    return None


def _number_holds(number) -> str | None:
    """What personal data a number inside a JSON value is, or None: a whole number that is a card number.
    Not a phone or an SSN: a JSON integer of 9 or 10 digits is an id far more often."""
    if isinstance(number, bool):
        return None
    if isinstance(number, float):
        if not number.is_integer():
            return None
        number = int(number)
    elif isinstance(number, Decimal):  # JsonNumber: the exponent first, so 1E+1000000 is not expanded
        if not number.is_finite() or not 12 <= number.adjusted() <= 18 or number != number.to_integral_value():
            return None
        number = int(number)
    if not 10**12 <= number < 10**19:
        return None
    return _WHAT["card"] if _card(str(number)) else None


def _kept_values(value, *, inside_json: bool = False) -> Iterable[str | int | float | Decimal]:
    """The strings of a kept value, and the numbers inside its JSON (a number column is not searched)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _kept_values(item, inside_json=True)
    elif isinstance(value, list):
        for item in value:
            yield from _kept_values(item, inside_json=True)
    elif inside_json and isinstance(value, int | float | Decimal):
        yield value


def _name_words(value: str) -> list[str]:
    """The words of a name, as the search splits text ("Jean-Luc" is two), folded, initials left out."""
    return [word for word in _NAME_WORD.findall(_fold(value)) if len(word) > 1]


def _text_like(model_field) -> bool:
    return not model_field.is_relation and isinstance(
        model_field, models.CharField | models.TextField | models.JSONField
    )


class PiiScanner:
    """Remembers the real identity values of one export as the rules mask them, and searches what the
    export keeps as it is. `strings` counts the strings searched (numbers in JSON are checked too, not
    counted)."""

    def __init__(self, *, allow: Iterable[str] = ()) -> None:
        self.allow = frozenset(allow)
        # Hashes of folded real values, one 64-bit number however long the value: every identity of a big
        # export is kept, at about 80 bytes each with the set's own (8 MB per 100,000 values)
        self.identities: set[int] = set()  # usernames, emails, emails' local parts
        self.names: set[int] = set()  # name pairs ("monica brown") and the pairs joined ("monicabrown")
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
        # What goes out as it is: a kept column, and text no rule covers (a column of choices needs none,
        # yet the database does not hold it to them)
        self.scanned_fields[entity.name] = [
            f.name for f in entity.fields
            if (rules[f.name].keeps if f.name in rules else _text_like(f))
            and f.name not in self.allow and f"{entity.name}.{f.name}" not in self.allow
        ]  # fmt: skip

    def remember(self, entity: str, record: dict) -> None:
        """Before the rules: the real values of the record's identity columns. A name is remembered as the
        pair of words where the given name meets the family name; a single word alone is too common a
        word to stand for someone."""
        fields = self.identity_fields.get(entity)
        if not fields:
            return
        first = last = None
        tokens: list[tuple[str, str]] = []
        for name, kind in fields:
            value = record.get(name)
            if not isinstance(value, str) or not value.strip():
                continue
            if kind == "first_name":
                first = _name_words(value)[-1:]
            elif kind == "last_name":
                last = _name_words(value)[:1]
            elif kind == "name":
                self._remember_name(_name_words(value)[-2:])
            elif kind in ("username", "email"):
                tokens.append((kind, _fold(value.strip()).strip(".-")))  # as the search strips a word of the text
        # A username or local part that is one plain word (admin, editor, finance, or the user's own first
        # name) is a word of ordinary text far more often than it stands for this person.
        plain_words = {*(first or ()), *(last or ())}
        for kind, token in tokens:
            if not (token.isalpha() and (token in plain_words or token in COMMON_ACCOUNT_WORDS)):
                self._remember_token(token)
            local_part = token.partition("@")[0].rstrip(".-") if kind == "email" else ""
            if len(local_part) >= MIN_LOCAL_PART and not local_part.isalpha():
                self.identities.add(hash(local_part))  # written without its domain ("box at gmail dot com")
        if first and last:
            self._remember_name(first + last)

    def _remember_token(self, token: str) -> None:
        if len(token) >= MIN_USERNAME or len(token) >= MIN_MARKED_USERNAME and not token.isalpha():
            self.identities.add(hash(token))

    def _remember_name(self, words: list[str]) -> None:
        if len(words) == 2 and len(words[0]) + len(words[1]) >= MIN_NAME_LETTERS:
            self.names.add(hash(" ".join(words)))
            if len(words[0]) + len(words[1]) >= MIN_JOINED_NAME:
                self.names.add(hash("".join(words)))

    def scan(self, entity: str, number: int, record: dict) -> None:
        """After the rules: raises PersonalDataFound for the first value that holds personal data."""
        for name in self.scanned_fields.get(entity, ()):
            for value in _kept_values(record.get(name)):
                if isinstance(value, str):
                    self.strings += 1
                    found = self.text_holds(value)
                else:
                    found = _number_holds(value)
                if found:
                    raise self.refusal(entity, number, name, found)

    def text_holds(self, text: str) -> str | None:
        """What personal data the text holds: by pattern, or a real identity value of this export."""
        forms = _forms(text)
        for form in forms:
            found = _pattern_in(form)
            if found:
                return found
        for form in forms:
            found = self._identity_in(form)
            if found:
                return found
        return None

    @staticmethod
    def refusal(entity: str, number: int, name: str, found: str) -> PersonalDataFound:
        return PersonalDataFound(
            f"{entity} record {number}, field {name!r} holds {found} after anonymization, so nothing "
            f"was written. Give {entity}.{name} a masking rule, or accept what it holds consciously."
        )

    def _identity_in(self, text: str) -> str | None:
        if not (self.identities or self.names) or len(text) < 3:
            return None
        for word in _WORD.findall(text.casefold()):
            token = word.strip(".-")
            if hash(token) in self.identities or (
                "@" in token and hash(token.partition("@")[0].rstrip(".-")) in self.identities
            ):  # an email's local part before a domain cut short ("box@gmail")
                return "a real identity value (username or email) of this export"
            if hash(token) in self.names:  # a name written as one word
                return "a real person's name of this export"
        words = _NAME_WORD.findall(text)  # as written: the case tells a name from two words of a sentence
        for index in range(len(words) - 1):
            given, following = words[index], words[index + 1]
            if self._is_name(given, following):  # Monica Brown, and Brown, Monica (or Li Wei)
                return "a real person's name of this export"
            initial = len(following) == 1 and following.isupper()
            if initial and index + 2 < len(words) and self._is_name(given, words[index + 2]):  # Monica J. Brown
                return "a real person's name of this export"
        return None

    def _is_name(self, first: str, second: str) -> bool:
        """In order, or reversed when both are capitalized: "Brown, Monica" is her name, "brown monica"
        lower case could be two words of a sentence ("Smith will..." is not "Will Smith")."""
        capitalized = first[0].isupper() and second[0].isupper()
        first, second = first.casefold(), second.casefold()
        return hash(f"{first} {second}") in self.names or (capitalized and hash(f"{second} {first}") in self.names)
