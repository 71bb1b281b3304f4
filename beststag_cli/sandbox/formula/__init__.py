"""Airtable formula engine for ``filterByFormula`` in the sandbox.

Usage::

    compiled = compile_formula("{status}='Ativo'", resolve_field)   # raises FormulaError
    compiled.matches(ctx)      # Airtable filter truthiness
    compiled.evaluate(ctx)     # the value (FormulaValueError instead of raising)

Pipeline: lark LALR parse (``grammar.lark``) → name check (all unknown fields reported at once) →
compilation to closures with constant folding (``evaluator.py``). Evaluation never walks the tree.

Value model (what ``ctx.value(key)`` returns): blank ``None``; text ``str``; numbers ``int|float``;
checkbox ``bool``; dates/datetimes aware ``datetime`` (UTC); multi-selects, links, lookups and
attachments ``list``.

Semantic choices (✅ documented by Airtable; ❓ undocumented — the behaviour chosen here)

=============================  ==========================================================================
Topic                          Behaviour
=============================  ==========================================================================
Truthiness ✅                  falsy: 0, False, "", NaN, [], blank, error. ❓ a list whose items are all
                               blank/"" is falsy; datetimes are truthy.
Precedence ❓                  comparison < ``&`` < ``+ -`` < ``* /`` < unary ``-``; left-associative.
Strings ❓                     ``'…'`` or ``"…"``; ``\\x`` yields ``x`` except ``\\n`` ``\\t`` ``\\r``
                               (newline, tab, CR). Smart quotes are a FormulaError.
Field refs ❓                  ``{name}`` with ``\\}`` for a literal ``}`` (other backslashes are literal,
                               as pyairtable does not escape them; a name ending in ``\\`` is ambiguous).
                               Bare single words are fields; bare ``TRUE``/``FALSE`` that are not fields
                               are the booleans. ``/* … */`` comments are ignored.
Numbers                        integer literals are ``int``; others ``float``. ``3/2`` → 1.5.
``&`` ❓                        blank → ""; integers without ``.0``; floats as JS prints them; booleans
                               "1"/"0"; arrays joined with ", "; datetimes ``2024-01-31T00:00:00.000Z``.
Arithmetic ❓                   blank → 0; bool → 1/0; numeric text converts; one-item arrays use the item;
                               non-numeric text → NaN (✅ recorded: pyairtable's real test base reads
                               {"specialValue": "NaN"} for ``{f} + "FOO"``); anything else (dates, arrays of
                               several) → #ERROR!; ``x/0`` → #DIV/0!.
Comparisons ❓                  number/number numeric; blank is 0 against numbers and "" against text;
                               text/text case-sensitive; arrays compare as their ", "-joined text;
                               number vs numeric text numeric, else text; date vs date by instant;
                               date vs text: the text is parsed as a date (else text comparison);
                               date vs number: epoch milliseconds; date vs blank: only ``!=`` is true.
                               An error operand yields the error.
AND/OR/XOR                     evaluate every argument (no short-circuit) so that errors propagate
                               symmetrically; array arguments are flattened; an empty array counts as
                               one false item.
IF ❓                          missing else → blank; only the chosen branch is evaluated; an error
                               condition yields the error.
SWITCH ❓                      patterns matched with ``=`` semantics; no default → blank.
FIND/SEARCH                    FIND is case-sensitive, 0 when absent, ``FIND('', x)`` = 0; SEARCH is
                               case-insensitive and blank when absent (also for an empty needle).
ARRAYJOIN ❓                   default separator ", "; non-array arguments are treated as one-item arrays.
SUM/MIN/MAX/AVERAGE ❓         flatten arrays; non-numeric text and blanks are ignored; MIN/MAX of only
                               datetimes return a datetime; AVERAGE of nothing → #DIV/0!; MIN/MAX of
                               nothing → 0. COUNT counts numbers, COUNTA non-blank values, COUNTALL all.
ROUND family ✅                ROUND ties half up toward +∞ (ROUND(-2.5) = -2; decimal-exact); ROUNDUP
                               away from zero; ROUNDDOWN toward zero; negative precision allowed. INT
                               floors (INT(-1.99) = -2); EVEN/ODD round away from zero to the next
                               even/odd integer (EVEN(-1.5) = -2, ODD(-1.5) = -3).
MOD ❓                         sign of the dividend (JavaScript ``%``). MOD(x, 0) → #DIV/0!.
VALUE ❓                       strips currency symbols, thousands separators; ``%`` divides by 100;
                               text without digits → #ERROR!.
Dates ❓                       blank dates: IS_AFTER/IS_BEFORE/IS_SAME → false; DATEADD, DATETIME_DIFF,
                               DATETIME_FORMAT, YEAR… → #ERROR!. Text arguments are parsed as dates.
DATEADD ✅/❓                   units as in moment.js (ms s m h d w M Q y, singular/plural long names,
                               long names case-insensitive, short ones case-sensitive). Fractional
                               counts: exact for ms…hours, rounded (JS Math.round) for days and larger.
                               Months clamp the day (Jan 31 + 1 month = Feb 29/28). Unknown unit → error.
DATETIME_DIFF ✅               d1 − d2 truncated toward zero; months/quarters/years use moment's
                               month-difference algorithm; no unit → seconds, unknown unit → ms.
IS_SAME                        default: same instant; with a unit: same start-of-unit in d1's zone
                               (weeks start on Sunday).
DATETIME_PARSE ❓               ISO dates/datetimes (naive → UTC, offsets honoured), else a dateutil
                               fallback (US month/day order); with a format: moment tokens, non-strict;
                               unparseable → #ERROR!; locale argument ignored (English only).
DATETIME_FORMAT ✅              moment tokens (YYYY YY Q M MM MMM MMMM Mo D DD Do DDD DDDD d dd ddd dddd E
                               w ww W WW H HH h hh k kk m mm s ss S… A a X x Z ZZ z L LL LLL LLLL LT LTS
                               [literal]); default format ISO with ms, ``Z`` in UTC else ``±HH:mm``.
SET_TIMEZONE                   converts with zoneinfo; later date parts and formats use that zone;
                               bad zone → #ERROR!. SET_LOCALE is accepted and ignored.
TODAY/NOW                      ``ctx.now`` (never the wall clock); TODAY is midnight UTC of that date.
TONOW/FROMNOW ✅/❓              Airtable: "the number of days between the current date and another
                               date" (both functions alike). Chosen: an integer, the whole days between
                               ``ctx.now`` and the date truncated toward zero, never negative (the
                               direction is not documented); blank date → #ERROR!.
WEEKDAY/WEEKNUM                WEEKDAY 0 = Sunday (``'Monday'`` start makes Monday 0); WEEKNUM: the week
                               containing January 1st is week 1, weeks start Sunday unless 'Monday'.
REGEX_* ❓                      Python ``re`` approximates RE2. REGEX_EXTRACT returns the whole first match
                               (#ERROR! when none); REGEX_REPLACE replaces all and accepts ``$1``/``\\1``.
LAST_MODIFIED_TIME             no args → ``ctx.last_modified(None)``; field refs →
                               ``ctx.last_modified([keys])``; other arguments are a FormulaError.
Errors                         any exception inside a function becomes ``#ERROR!``; error values propagate
                               through operators and functions (except ISERROR, and IF/SWITCH branches
                               not taken). Text results over 1,000,000 characters are #ERROR!.
=============================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from .evaluator import CompiledFormula, compile_formula
from .functions import FUNCTIONS
from .parser import FormulaError, parse
from .values import FormulaValueError, is_truthy


@runtime_checkable
class EvalContext(Protocol):
    """What a compiled formula needs from one record."""

    record_id: str
    created_time: datetime  # aware UTC
    now: datetime  # aware UTC; NOW()/TODAY() use it

    def value(self, key: Hashable) -> Any: ...

    def last_modified(self, keys: list[Hashable] | None) -> datetime | None: ...


_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class SimpleContext:
    """An :class:`EvalContext` over a dict of field values (keys are whatever the resolver returned;
    with :meth:`resolver` they are the field names themselves)."""

    values: dict[Hashable, Any] = field(default_factory=dict)
    record_id: str = "rec00000000000001"
    created_time: datetime = _EPOCH
    now: datetime = _EPOCH
    modified: dict[Hashable, datetime] = field(default_factory=dict)
    last_modified_time: datetime | None = None

    def value(self, key: Hashable) -> Any:
        return self.values.get(key)

    def last_modified(self, keys: list[Hashable] | None) -> datetime | None:
        if keys is None:
            if self.last_modified_time is not None:
                return self.last_modified_time
            return max(self.modified.values(), default=None)
        times = [self.modified[k] for k in keys if k in self.modified]
        return max(times, default=None)

    def resolver(self, extra: Iterable[str] = ()) -> Callable[[str], Hashable]:
        """A resolver accepting this context's keys (plus ``extra`` names) and rejecting others."""
        return name_resolver([*self.values, *extra])


def name_resolver(names: Iterable[Hashable] | Mapping[str, Hashable]) -> Callable[[str], Hashable]:
    """Resolver for :func:`compile_formula`: a mapping name → key, or an iterable of names that are
    their own keys. Unknown names raise KeyError."""
    mapping: dict[Any, Hashable] = dict(names) if isinstance(names, Mapping) else {n: n for n in names}

    def resolve(name: str) -> Hashable:
        return mapping[name]

    return resolve


__all__ = [
    "FUNCTIONS",
    "CompiledFormula",
    "EvalContext",
    "FormulaError",
    "FormulaValueError",
    "SimpleContext",
    "compile_formula",
    "is_truthy",
    "name_resolver",
    "parse",
]
