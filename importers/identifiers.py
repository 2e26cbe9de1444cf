"""Identifiers written as numbers or addresses: phone numbers, e-mail addresses, personal identity
numbers, street addresses, web addresses and dates of birth.

`find_identifiers(text, language)` returns their ranges; the pseudonymiser puts a bracketed label
in their place ("[phone]"), never a made-up number, so nobody mistakes it for a real one.

The rules, and why:

- **Identity numbers** are checked, not just matched: a Swedish personnummer or samordningsnummer
  (YYMMDD-NNNC, with or without the century and the dash) by its Luhn digit; a Norwegian
  fødselsnummer or D-number (DDMMYY NNNCC) by both its mod-11 check digits; a Danish CPR number
  (DDMMYY-NNNN) by its date, as the check digit was given up in 2007; a US social security number
  (AAA-GG-SSSS) by the ranges that are never issued; a UK National Insurance number by its shape.
  A number that only looks like one is left to the phone rule.
- **Phone numbers** are runs of digits with the separators people type (spaces, dashes, dots,
  brackets) holding 7 to 15 digits that start like a phone number (+ or 0, or a bracket), or that
  have the shape of a Norwegian or Danish eight-digit number or a North American ten-digit one, or
  that follow a word such as "phone" or "nummer". Thousands written with spaces ("1 000 000 kr")
  and years ("1985-1990") have none of these shapes.
- **E-mail** and **web addresses**: the usual shapes; a bare domain counts only with a path
  ("facebook.com/anna"), as "gmail.com" alone names nobody.
- **Street addresses**: a house number and a street name with a street word (English "12 Elm
  Street"), or a street name ending in a street word of the language followed by a number
  ("Storgatan 14", "Kirkeveien 45B", "Nørregade 12", "Lindenstraße 8").
- **Dates of birth**: a date within a few words after "born", "date of birth", "DOB", "född",
  "født", "geboren" and the like. Other dates stay: a session date is not an identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

LABELS = {
    "phone": "[phone]",
    "email": "[e-mail]",
    "id": "[ID number]",
    "address": "[address]",
    "url": "[URL]",
    "dob": "[date of birth]",
}

_LETTER = r"[^\W\d_]"

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]*\w@\w[\w-]*(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")
_URL = re.compile(
    r"(?<![\w@/])(?:(?:https?://|www\.)[^\s<>\"']+"
    r"|(?:[\w-]+\.)+(?:com|org|net|edu|gov|io|se|no|dk|de|fi|uk|nu|eu|info|me|at|ch)/[^\s<>\"']*)",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?)]}\"'’”"
_DOMAIN_PATH = re.compile(r"\.(?:com|org|net|edu|gov|io|se|no|dk|de|fi|uk|nu|eu|info|me|at|ch)/")

# Identity numbers (the checks are below).
_SWEDISH_ID = re.compile(r"(?<![\d+-])((?:19|20)?\d{6})\s?([-+])?\s?(\d{4})(?![\d-])")
_NORWEGIAN_ID = re.compile(r"(?<![\d+-])(\d{6})\s?(\d{5})(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(\d{3})[- ](\d{2})[- ](\d{4})(?![\d-])")
# Any two letters: HMRC's own example (QQ 12 34 56 C) has a prefix never issued, and a mistyped
# number identifies as well as a right one.
_UK_NI = re.compile(r"(?<![\w])[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D](?!\w)")

# A run of digits and separators that may be a phone number.
_PHONE = re.compile(r"(?<![\w+.,/-])(?:\+|00)?\(?\d[\d()\s.\-–/]{5,22}\d(?![\w/])")
_PHONE_WORDS = re.compile(
    r"(?:phone|telephone|mobile|mob|cell|tel|number|no\.|ring|call|text|nummer|numret|numm?eret|"
    r"mobil|mobilen|telefon|telefonnummer|telefonen|tlf|handy|rufnummer)\W{0,3}(?:\w+\W{1,3}){0,3}$",
    re.IGNORECASE,
)

_STREET_WORDS_EN = (
    "street|st|road|rd|avenue|ave|lane|ln|drive|close|way|grove|place|crescent|terrace|court|gardens|"
    "square|row|walk|mews|boulevard|blvd|parade|hill|rise|view|green"
)
_STREET_EN = re.compile(
    rf"(?<!\w)\d{{1,5}}[A-Za-z]?,?\s+(?:[A-Z]{_LETTER}*['’-]?{_LETTER}*\s+){{1,3}}(?i:{_STREET_WORDS_EN})\b\.?"
)
_STREET_SUFFIXES = (
    "gatan|gata|vägen|väg|gränd|gränden|stigen|torget|allén|backen|leden|plan|"  # Swedish
    "gate|gaten|veien|vegen|vei|veg|stien|plassen|torvet|allé|bakken|"  # Norwegian
    "gade|vej|vænget|stræde|torv|plads|boulevard|"  # Danish
    "straße|strasse|str\\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee"  # German
)
_STREET_NORDIC = re.compile(
    rf"(?<!\w)(?:(?:[A-ZÅÄÖÆØÜ]{_LETTER}*\s){{0,2}}[A-ZÅÄÖÆØÜ]{_LETTER}*(?:{_STREET_SUFFIXES})"
    rf"|(?:[A-ZÅÄÖÆØÜ]{_LETTER}*\s){{1,2}}(?:gate|gata|vei|veg|gade|vej|straße|strasse))"
    rf"\s\d{{1,4}}(?:(?:[A-Za-z]|\s[A-Z])(?!\w))?",
)
# A street name with its street word but no number is a place (handled as a name).
STREET_NAME = re.compile(rf"[A-ZÅÄÖÆØÜ]{_LETTER}+(?:{_STREET_SUFFIXES})")

_MONTHS = {
    "en": "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec",
    "sv": "januari|februari|mars|april|maj|juni|juli|augusti|september|oktober|november|december",
    "nb": "januar|februar|mars|april|mai|juni|juli|august|september|oktober|november|desember",
    "da": "januar|februar|marts|april|maj|juni|juli|august|september|oktober|november|december",
    "de": "januar|februar|märz|april|mai|juni|juli|august|september|oktober|november|dezember",
}
_ALL_MONTHS = "|".join(sorted({m for months in _MONTHS.values() for m in months.split("|")}, key=len, reverse=True))
_DATE = (
    rf"(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}"
    rf"|\d{{1,2}}[./-]\d{{1,2}}[./-](?:\d{{4}}|\d{{2}})"
    rf"|(?:the\s)?\d{{1,2}}(?:st|nd|rd|th|\.|:e|:a)?\s(?:of\s)?(?:{_ALL_MONTHS})\.?,?\s(?:\d{{4}}|\d{{2}})"
    rf"|(?:{_ALL_MONTHS})\.?\s\d{{1,2}}(?:st|nd|rd|th)?,?\s\d{{4}})"
)
_BIRTH_WORDS = (
    r"born|birthday|date\sof\sbirth|d\.?o\.?b\.?|birth\sdate|"
    r"född|födelsedag|födelsedatum|föddes|"
    r"født|fødselsdag|fødselsdato|"
    r"geboren|geburtstag|geburtsdatum"
)
_BIRTH_STEMS = ("born", "birth", "dob", "d.o.b", "född", "födel", "født", "fødsel", "geboren", "geburt")
_DOB = re.compile(
    rf"(?:{_BIRTH_WORDS})\W{{0,3}}(?:[^\W\d]+\W{{1,3}}){{0,3}}?(?P<date>{_DATE})(?!\d)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Identifier:
    start: int
    end: int
    kind: str  # phone | email | id | address | url | dob
    text: str

    @property
    def label(self) -> str:
        return LABELS[self.kind]


def find_identifiers(text: str, language: str = "en") -> list[Identifier]:
    """Every phone number, e-mail, identity number, street address, URL and date of birth in `text`,
    sorted and without overlaps (the first rule to claim a stretch keeps it)."""
    taken = bytearray(len(text))
    found: list[Identifier] = []

    def claim(start: int, end: int, kind: str) -> None:
        while end > start and text[end - 1] in _TRAILING:
            end -= 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end <= start or any(taken[start:end]):
            return
        taken[start:end] = b"\x01" * (end - start)
        found.append(Identifier(start, end, kind, text[start:end]))

    # Cheap look-ups first: most of a transcript has no "@", no web address and no birth word, and
    # the patterns behind them are the slow ones.
    lowered = text.lower()
    if "@" in text:
        for match in _EMAIL.finditer(text):
            claim(*match.span(), "email")
    if "://" in text or "www." in lowered or _DOMAIN_PATH.search(lowered):
        for match in _URL.finditer(text):
            claim(*match.span(), "url")
    if any(word in lowered for word in _BIRTH_STEMS):
        for match in _DOB.finditer(text):
            if _plausible_date(match.group("date")):
                claim(*match.span("date"), "dob")
    for match in _SWEDISH_ID.finditer(text):
        if _swedish_id(match.group(1), match.group(3), match.group(2)) or _danish_id(match):
            claim(*match.span(), "id")
    for match in _NORWEGIAN_ID.finditer(text):
        if _norwegian_id(match.group(1) + match.group(2)):
            claim(*match.span(), "id")
    for match in _SSN.finditer(text):
        if _ssn(match.group(1), match.group(2), match.group(3)) and (
            match.group().count("-") == 2 or _after_phone_word(text, match.start())
        ):
            claim(*match.span(), "id")
    for match in _UK_NI.finditer(text):
        claim(*match.span(), "id")
    for match in _STREET_EN.finditer(text):
        claim(*match.span(), "address")
    for match in _STREET_NORDIC.finditer(text):
        claim(*match.span(), "address")
    for match in _PHONE.finditer(text):
        start, end = match.span()
        candidate = text[start:end]
        if _phone(candidate, text, start):
            claim(start, end, "phone")
    found.sort(key=lambda item: item.start)
    return found


def _after_phone_word(text: str, start: int) -> bool:
    before = text[max(0, start - 60) : start]
    return bool(_PHONE_WORDS.search(before)) or "social security" in before.lower()


def _phone(candidate: str, text: str, start: int) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not 7 <= len(digits) <= 15:
        return False
    groups = re.findall(r"\d+", candidate)
    if "/" in candidate and len(groups) == 3 and len(groups[2]) in (2, 4) and len(groups[0]) <= 2:
        return False  # a date, 12/09/1986
    if re.fullmatch(r"\d{1,2}[.-]\d{1,2}[.-]\d{2,4}", candidate):
        return False
    if candidate.startswith(("+", "0", "(")):
        return True
    shapes = " ".join(str(len(group)) for group in groups)
    if shapes in ("2 2 2 2", "3 2 3", "8", "3 3 4", "4 4", "3 2 2 2") and not _thousands(groups):
        if shapes == "4 4" and not _after_phone_word(text, start):
            return False  # 1985-1990 is a span of years
        # eight digits in one run may be a date (20230115) or a count
        return shapes != "8" or _after_phone_word(text, start)
    return _after_phone_word(text, start) and not _thousands(groups)


def _thousands(groups: list[str]) -> bool:
    return len(groups) > 1 and len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:])


def _luhn(digits: str) -> bool:
    total = 0
    for index, character in enumerate(reversed(digits)):
        value = int(character)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _swedish_id(birth: str, serial: str, separator: str | None) -> bool:
    short = birth[-6:]
    year, month, day = int(short[:2]), int(short[2:4]), int(short[4:6])
    if day > 60:
        day -= 60  # a samordningsnummer
    if len(birth) == 8:
        dated = _valid_date(int(birth[:4]), month, day)
    else:
        dated = _valid_date(1900 + year, month, day) or _valid_date(2000 + year, month, day)
    return dated and _luhn(short + serial)


def _danish_id(match: re.Match) -> bool:
    birth, separator = match.group(1), match.group(2)
    if len(birth) != 6 or separator != "-":
        return False
    day, month, year = int(birth[:2]), int(birth[2:4]), int(birth[4:6])
    return _valid_date(1900 + year, month, day) or _valid_date(2000 + year, month, day)


def _norwegian_id(number: str) -> bool:
    digits = [int(character) for character in number]
    day, month = int(number[:2]), int(number[2:4])
    if day > 40:
        day -= 40  # D-number
    if month > 40:
        month -= 40  # H-number
    year = int(number[4:6])
    if not (_valid_date(1900 + year, month, day) or _valid_date(2000 + year, month, day)):
        return False
    first = 11 - sum(w * d for w, d in zip((3, 7, 6, 1, 8, 9, 4, 5, 2), digits)) % 11
    first = 0 if first == 11 else first
    second = 11 - sum(w * d for w, d in zip((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), digits)) % 11
    second = 0 if second == 11 else second
    return first != 10 and second != 10 and digits[9] == first and digits[10] == second


def _ssn(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _plausible_date(text: str) -> bool:
    numbers = [int(number) for number in re.findall(r"\d+", text)]
    if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", text):
        return _valid_date(numbers[0], numbers[1], numbers[2])
    if re.fullmatch(r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}", text):
        first, second = numbers[0], numbers[1]
        return (1 <= first <= 31 and 1 <= second <= 12) or (1 <= first <= 12 and 1 <= second <= 31)
    return True
