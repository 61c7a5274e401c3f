"""Making store text safe for each output, and formatting exact amounts.

Every string that comes from the store (tag values, resource ids, account names, evidence) is
attacker-controlled: whoever can put a tag on a resource writes into the report. The HTML
template escapes through Jinja2's autoescape; this module holds the rules for the other sinks:

- spreadsheets (CSV, XLSX): a cell whose text starts with ``= + - @``, a tab or a carriage
  return (or their full-width forms, which some spreadsheet programs fold to ASCII) is read as a
  formula; `spreadsheet_text` marks it as text (`spreadsheet_text_sql` does the same inside a
  DuckDB query, for the CSV files DuckDB writes). Numbers are never passed through it;
- Markdown: `markdown_text` backslash-escapes every character Markdown or chat clients read as
  markup, and turns line breaks into spaces so one value cannot start a new block;
- XML (XLSX): characters XML 1.0 forbids are replaced, so a hostile value cannot break the file.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
GB_PLACES = Decimal("0.001")

# Characters that make a spreadsheet cell a formula (OWASP "CSV injection"), with the
# full-width forms (U+FF1D, U+FF0B, U+FF0D, U+FF20) that Excel's input folding can turn into them.
FORMULA_TRIGGERS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
# Blanks a spreadsheet may skip before it sees a formula: every Unicode space (vertical tab and form
# feed included) and the zero-width characters. Guarding one value too many costs an apostrophe.
_LEADING_BLANKS = "".join(sorted(
    {chr(c) for c in range(0x10000) if chr(c).isspace()} - set(FORMULA_TRIGGERS)
    | set("\u200b\u200c\u200d\u2060\ufeff")))

# Characters Markdown (CommonMark/GFM) or chat clients read as markup: emphasis, code, links and
# images, raw HTML and entities, tables, strike-through, headings, @mentions and $math$. Each is
# backslash-escaped (CommonMark renders any escaped ASCII punctuation literally). Dots, dashes and
# colons stay as they are so resource ids remain readable: a value never starts a line here.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~&!@$])")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
# What GFM's autolink extension or markdown-it's linkify could link or notify: a scheme, "www.", an
# e-mail address or a mention, a bare domain such as evil.example.
_AUTOLINK = re.compile(r"(?i)[a-z][a-z0-9+.-]*:/{0,2}[^\s]|www\.|@|[a-z0-9-]\.[a-z]{2,}")


def needs_formula_guard(text: str) -> bool:
    """True when a spreadsheet would read `text` as a formula (also after leading blanks)."""
    if not text:
        return False
    if text[0] in FORMULA_TRIGGERS:
        return True
    stripped = text.lstrip(_LEADING_BLANKS)
    return bool(stripped) and stripped[0] in FORMULA_TRIGGERS


def spreadsheet_text(text: str | None) -> str:
    """Text for a CSV cell: a leading apostrophe when it would otherwise be read as a formula.

    Only for text: amounts are written as numbers and never pass through here, so a negative
    amount stays a number."""
    if text is None:
        return ""
    text = str(text)
    return "'" + text if needs_formula_guard(text) else text


def _re2_class(chars: str | frozenset[str]) -> str:
    """A regular-expression character class of `chars`, each written as an RE2 ``\\x{..}`` escape,
    so no character of the set can close the class, form a range or end an SQL literal."""
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(chars)) + "]"


# The test of `needs_formula_guard` as an RE2 pattern, for DuckDB's regexp_matches.
FORMULA_GUARD_PATTERN = "^" + _re2_class(_LEADING_BLANKS) + "*" + _re2_class(FORMULA_TRIGGERS)


def spreadsheet_text_sql(expr: str) -> str:
    """The SQL twin of `spreadsheet_text` for a VARCHAR expression: DuckDB prefixes an apostrophe
    to each value a spreadsheet would read as a formula, inside the query (no per-row Python).

    For the CSV files DuckDB's COPY writes (``costaudit sql --format csv``, ``costaudit export
    focus --format csv``). NULL stays NULL. Apply it to text columns only: amounts stay numbers."""
    return f"CASE WHEN regexp_matches({expr}, '{FORMULA_GUARD_PATTERN}') THEN '''' || {expr} ELSE {expr} END"


def xml_text(text: str) -> str:
    """`text` with the characters XML 1.0 cannot hold replaced by U+FFFD."""
    return _XML_ILLEGAL.sub("\ufffd", text)


def markdown_text(text: object) -> str:
    """Store text as literal Markdown: specials backslash-escaped, line breaks as spaces.

    Text that a GFM renderer would turn into a link by itself (``https://...``, ``www.``, an
    e-mail address: "autolinks", which backslashes do not stop on every renderer) goes into a
    code span instead, where nothing is a link, markup or mention."""
    if text is None:
        return ""
    flat = _LINE_BREAKS.sub(" ", str(text))
    if _AUTOLINK.search(flat):
        return _code_span(flat)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def _code_span(text: str) -> str:
    """`text` as one Markdown code span: fenced by more backticks than it holds in a row, with
    pipes escaped so it stays one table cell (GFM tables read ``\\|`` inside code as ``|``)."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    body = text.replace("|", "\\|")
    pad = " " if body.startswith(("`", " ")) or body.endswith(("`", " ")) else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def exact(value: Decimal | None) -> str | None:
    """An amount as exact decimal text without exponent: at least two places, more when the
    store has them (``2359.68``, ``0.000125``, ``-12.50``)."""
    if value is None:
        return None
    amount = Decimal(value)
    normal = amount.normalize()
    if normal.as_tuple().exponent > -2:  # type: ignore[operator]
        normal = amount.quantize(CENT)
    return f"{normal:f}"


def money(value: Decimal | None) -> str:
    """An amount for people: rounded half-up to the cent, thousands separated."""
    if value is None:
        return "-"
    return f"{Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def gigabytes(value: Decimal | None) -> str:
    """A data volume in GB for people, to the MB."""
    if value is None:
        return "-"
    return f"{Decimal(value).quantize(GB_PLACES, rounding=ROUND_HALF_UP):,.3f}"


def share(part: Decimal | None, whole: Decimal | None) -> Decimal | None:
    """`part` as a percentage of `whole` (same currency), to 0.1; None when `whole` is zero."""
    if part is None or not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def percent(value: Decimal | None) -> str:
    """A percentage for people."""
    return "-" if value is None else f"{value}%"
