"""What every rule reads: the notebook and the kernel's ledger, with the lookups rules share."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar, cast

from ...core.records import LedgerEntry, Record
from ..facts import Call
from ..notebook import Cell, Notebook
from ..registry import Hit

R = TypeVar("R", bound=Record)
T = TypeVar("T")


class Claim(NamedTuple):
    """A markdown sentence that says something a rule checks, and where it is."""

    cell: Cell
    line: int
    sentence: str
    match: re.Match[str]  # what the rule's pattern found in the sentence

    def hit(self, message: str) -> Hit:
        """Return a finding of the rule at this sentence."""
        return Hit(self.cell, self.line, message)


class Context:
    """Everything the rules read: the notebook and the ledger, with shared lookups."""

    def __init__(self, nb: Notebook, ledger: Sequence[LedgerEntry]) -> None:
        self.nb = nb
        self.ledger = list(ledger)
        self.by_id = {c.id: c for c in nb.cells}
        # hashing every cell's source is needed only to match ledger entries
        self.by_sha = {c.source_sha1: c for c in nb.cells} if self.ledger else {}
        self._shared: dict[Callable[[Context], Any], Any] = {}

    def shared(self, compute: Callable[[Context], T]) -> T:
        """Return ``compute(self)``, computed once per check: a result several rules read."""
        if compute not in self._shared:
            self._shared[compute] = compute(self)
        return cast(T, self._shared[compute])

    # -- the notebook ------------------------------------------------------------------------------

    def calls(self) -> Iterator[tuple[Cell, Call]]:
        """Yield every call in notebook order, with its cell."""
        return iter(self.shared(_all_calls))

    def find(self, shorts: Collection[str]) -> list[tuple[Cell, Call]]:
        """Return the calls whose name or last name component is one of ``shorts``."""
        index = self.shared(_calls_by_name)
        found = {at: hit for name in shorts for at, hit in index.get(name, ())}
        return [found[at] for at in sorted(found)]

    def names(self) -> set[str]:
        """Return every identifier and attribute name the code uses."""
        out: set[str] = set()
        for cell in self.nb.code():
            if cell.facts:
                out |= cell.facts.names
        return out

    def sentences(self) -> Iterator[tuple[Cell, int, str]]:
        """Yield every markdown sentence with its cell and line (split once per check)."""
        return iter(self.shared(_markdown_sentences))

    def claims(self, pattern: re.Pattern[str], *, cited: bool = True) -> Iterator[Claim]:
        """Yield each markdown sentence ``pattern`` matches, in notebook order.

        A question claims nothing, so questions are left out; with ``cited=False`` so are
        sentences that attribute what they say to published work ("Wang et al. report").
        """
        for cell, line, sentence in self.sentences():
            m = pattern.search(sentence)
            if m and not is_question(sentence) and (cited or not is_cited(sentence)):
                yield Claim(cell, line, sentence, m)

    # -- the ledger --------------------------------------------------------------------------------

    def cell_of(self, entry: LedgerEntry) -> Cell | None:
        """Return the cell that ran a ledger entry (by id, else by source), if it is here."""
        cell = self.by_id.get(str(entry.cell_id))
        return cell or self.by_sha.get(str(entry.source_sha1))

    def records(self, kind: type[R]) -> list[tuple[R, Cell | None]]:
        """Return the ledger's records of one type, each with the cell that ran it."""
        return [(e.record, self.cell_of(e)) for e in self.ledger if isinstance(e.record, kind)]


def _calls_by_name(ctx: Context) -> dict[str, list[tuple[int, tuple[Cell, Call]]]]:
    """Return each call under its name and its last name component, with its place in notebook
    order: rules look calls up by name many times, and a scan of every call each time is slow
    on large notebooks."""
    index: dict[str, list[tuple[int, tuple[Cell, Call]]]] = {}
    for at, (cell, call) in enumerate(ctx.calls()):
        index.setdefault(call.short, []).append((at, (cell, call)))
        if call.name != call.short:
            index.setdefault(call.name, []).append((at, (cell, call)))
    return index


def _all_calls(ctx: Context) -> list[tuple[Cell, Call]]:
    """Return every call in notebook order, with its cell (listed once per check)."""
    return [(cell, call) for cell in ctx.nb.code() if cell.facts for call in cell.facts.calls]


SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
#: Wording that attributes a statement to published work rather than to this notebook.
CITED = re.compile(
    r"\bet al\b|arxiv\.org|\bthe (?:original )?paper\b|\bthey (?:report|found|show)|"
    r"\breported (?:in|by)\b|\baccording to\b|\bas (?:shown|found|reported) (?:in|by)\b",
    re.I,
)


def is_question(sentence: str) -> bool:
    """Whether a markdown sentence is a question (it ends with "?", markup aside)."""
    return sentence.rstrip(" *_`)]>\t").endswith("?")


def is_cited(sentence: str) -> bool:
    """Whether a sentence attributes what it says to published work."""
    return CITED.search(sentence) is not None


def _markdown_sentences(ctx: Context) -> list[tuple[Cell, int, str]]:
    """Return every markdown sentence with its cell and line, HTML comments left out."""
    return [
        (cell, i, sentence)
        for cell in ctx.nb.markdown()
        for i, line in enumerate(cell.lines, 1)
        for sentence in SENTENCE_END.split(without_comments(line))
        if sentence.strip()
    ]


def without_comments(line: str) -> str:
    """Return ``line`` without its ``<!-- ... -->`` comments (a scan, not a lazy pattern).

    ``<!--.*?-->`` scans to the end of the line from every unclosed ``<!--``: quadratic.
    """
    if "<!--" not in line:
        return line
    parts, pos = [], 0
    while (start := line.find("<!--", pos)) >= 0:
        end = line.find("-->", start + 4)
        if end < 0:
            break  # no later "<!--" can close either
        parts.append(line[pos:start])
        pos = end + 3
    parts.append(line[pos:])
    return "".join(parts)
