"""The ledger's records: one typed definition of every analysis the core reports.

Each analysis emits exactly one record (:func:`interp_magics.core.events.emit`); the notebook
ledger stores it as plain JSON with the cell that ran it; the server extension validates what
a front end sends back with :func:`clean_entry`; the rigor rules read entries through
:func:`parse_entry` as typed objects. One definition serves all four, so a field cannot be
named one way where it is written and another where it is read. :func:`json_schema` describes
the records for other languages (the JupyterLab extension's ``protocol.ts`` is checked against
it by a test).

Control names are one vocabulary, :data:`CONTROLS`; :func:`control_name` maps the display
names and spellings that older ledgers carried onto it.

Plain standard library: the server imports this module without torch.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union, get_args, get_origin

SCHEMA = 1
MAX_TEXT = 1_000  # characters of one string field in a cleaned entry
MAX_LIST = 100  # items of one list field in a cleaned entry
MAX_P_VALUES = 1_000_000

# -- the control vocabulary -----------------------------------------------------------------------

SHUFFLED = "shuffled"  # labels permuted: the permutation test's null
RANDOM_FEATURES = "random_features"  # the same probe on Gaussian features of the same shape
MAJORITY = "majority"  # chance levels (majority class, frequency guessing), binomial test
CONTROL_TASK = "control_task"  # Hewitt & Liang: random labels per word type
CONTROL_REPRESENTATION = "control_representation"  # e.g. the same layer of a random-init model

CONTROLS = (SHUFFLED, RANDOM_FEATURES, MAJORITY, CONTROL_TASK, CONTROL_REPRESENTATION)
"""Every control a probe record can name."""

BASELINE_CONTROLS = frozenset({SHUFFLED, RANDOM_FEATURES, CONTROL_TASK, CONTROL_REPRESENTATION})
"""Controls that tell a probe's accuracy from what any representation would give (a chance
level alone does not)."""

_CONTROL_SPELLINGS = {
    "random features": RANDOM_FEATURES,
    "random-features": RANDOM_FEATURES,
    "shuffle": SHUFFLED,
    "shuffled labels": SHUFFLED,
    "permutation": SHUFFLED,
    "control task": CONTROL_TASK,
    "control-task": CONTROL_TASK,
    "random-init model": CONTROL_REPRESENTATION,
    "random_init": CONTROL_REPRESENTATION,
    "random init": CONTROL_REPRESENTATION,
    "chance": MAJORITY,
}


def control_name(name: str) -> str:
    """Return the vocabulary name of a control (``"random features"`` -> ``random_features``).

    A name outside the vocabulary is a control representation the user named (probes accept
    ``{"any name": features}``), so it maps to :data:`CONTROL_REPRESENTATION`.
    """
    key = name.strip().lower()
    if key in CONTROLS:
        return key
    return _CONTROL_SPELLINGS.get(key, CONTROL_REPRESENTATION)


# -- records --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """Base of every ledger record; ``kind`` names the analysis."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-ready data, ``kind`` first."""
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in fields_of(self)}}


@dataclass(frozen=True)
class CaptureRecord(Record):
    """Activations were captured from a model."""

    kind: ClassVar[str] = "capture"
    model: str
    patterns: list[str]
    tensors: int
    bytes: int
    dtype: str | None = None
    positions: list[int] | None = None
    grad: bool = False


@dataclass(frozen=True)
class PatchRecord(Record):
    """An activation-patching sweep (exact, or attribution with ``verified`` cells re-run)."""

    kind: ClassVar[str] = "patch"
    method: str  # "exact" or "attribution"
    direction: str  # "denoising" or "noising"
    site: str
    by: list[str]
    metric: str
    corruption: str  # "counterfactual", "noise", or "zero" (feature attribution)
    cells: int
    verified: int = 0
    normalised: bool = True
    p_values: int = 0  # per-cell tests of no effect, one per cell
    corrected: bool = False
    correction: str | None = None  # "max-t" or a multipletests method


@dataclass(frozen=True)
class AblationRecord(Record):
    """A zero, mean or resample ablation sweep."""

    kind: ClassVar[str] = "ablation"
    ablation: str  # "zero", "mean" or "resample"
    site: str
    by: list[str]
    metric: str
    cells: int
    p_values: int = 0  # per-cell tests of no effect, one per cell
    corrected: bool = False
    correction: str | None = None  # "max-t" or a multipletests method


@dataclass(frozen=True)
class ProbeRecord(Record):
    """A probe (or a sweep of probes over layers, ``layers`` > 0) with its controls."""

    kind: ClassVar[str] = "probe"
    estimator: str
    controls: list[str]  # names from CONTROLS
    n_permutations: int
    p_values: int
    corrected: bool
    seed: int | None = None
    correction: str | None = None
    accuracy: float | None = None
    layers: int = 0


@dataclass(frozen=True)
class StatTestRecord(Record):
    """A statistical test this package ran (``p_values`` of them, maybe corrected)."""

    kind: ClassVar[str] = "statistical_test"
    test: str
    p_values: int
    corrected: bool
    correction: str | None = None


@dataclass(frozen=True)
class InterventionRecord(Record):
    """A forward pass run with edited activations (an intervention, steering, an ablation)."""

    kind: ClassVar[str] = "intervention"
    edits: int
    sites: list[str]
    operations: list[str]
    direction: bool = False  # an edit along a given vector or subspace (add, project_*)
    baseline: str | None = None  # the control it was compared with ("random"), if any


@dataclass(frozen=True)
class PathPatchRecord(Record):
    """A path-patching sweep: senders' effects through chosen receivers only."""

    kind: ClassVar[str] = "path_patch"
    senders: int
    receivers: int
    metric: str
    direction: str
    p_values: int = 0  # one test of no effect per sender-receiver cell
    corrected: bool = False
    correction: str | None = None


@dataclass(frozen=True)
class EdgeAttributionRecord(Record):
    """Edge attribution patching (EAP or EAP-IG) over a model's graph."""

    kind: ClassVar[str] = "edge_attribution"
    method: str  # "eap" or "eap-ig"
    edges: int
    metric: str
    verified: int = 0  # edges re-run by exact edge patching (top and random)


@dataclass(frozen=True)
class FaithfulnessRecord(Record):
    """A circuit run alone (everything outside it ablated) against the full model."""

    kind: ClassVar[str] = "faithfulness"
    edges: int  # edges kept in the circuit
    ablation: str  # "mean", "resample" or "corrupt"
    metric: str
    faithfulness: float | None = None
    completeness: bool = False  # the circuit was also removed from the full model


@dataclass(frozen=True)
class LensRecord(Record):
    """A logit lens, tuned lens or direct logit attribution read of a model."""

    kind: ClassVar[str] = "lens"
    lens: str  # "logit", "tuned" or "dla"
    layers: int
    metric: str | None = None


RECORD_TYPES: dict[str, type[Record]] = {
    cls.kind: cls
    for cls in (
        CaptureRecord,
        PatchRecord,
        AblationRecord,
        ProbeRecord,
        StatTestRecord,
        InterventionRecord,
        PathPatchRecord,
        EdgeAttributionRecord,
        FaithfulnessRecord,
        LensRecord,
    )
}
"""Every record class by its ``kind``."""


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger entry: a record and the cell whose run produced it."""

    record: Record | None  # None for a kind this version does not know
    kind: str
    cell_id: str | None = None
    source_sha1: str | None = None
    execution_count: int | None = None
    time: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


CONTEXT_FIELDS: dict[str, Any] = {
    "cell_id": str | None,
    "source_sha1": str | None,
    "execution_count": int | None,
    "time": float | None,
}
"""The fields the ledger adds to every record (which cell ran it, and when)."""


def fields_of(record: Record | type[Record]) -> tuple[dataclasses.Field[Any], ...]:
    """Return the data fields of a record (class or instance)."""
    return dataclasses.fields(record)


def field_types(cls: type[Record]) -> dict[str, Any]:
    """Return each field's type of a record class, resolved from its annotations."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields_of(cls)}


# -- reading entries back -------------------------------------------------------------------------


def clean_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``entry`` with only well-typed fields: what a front end may send back.

    Fields of the entry's record (and the ledger's context fields) are kept when their value
    has the declared type, strings and lists shortened; wrongly typed values are dropped.
    Fields no record declares are kept only when they are plain finite scalars (for display).
    Control names are mapped onto the vocabulary.
    """
    kind = entry.get("kind")
    cls = RECORD_TYPES.get(kind) if isinstance(kind, str) else None
    declared = {**CONTEXT_FIELDS, **(field_types(cls) if cls else {})}
    clean: dict[str, Any] = {"kind": kind[:MAX_TEXT]} if isinstance(kind, str) else {}
    for key, value in entry.items():
        if not isinstance(key, str) or key == "kind":
            continue
        if key == "p_values" and not _p_count(value):
            continue  # a count the rules add up: out of range in any kind of entry
        if key in declared:
            checked = _checked(value, declared[key])
            if checked is not _INVALID:
                clean[key] = _controls(checked) if key == "controls" else checked
        elif value is None or isinstance(value, (bool, int)):
            clean[key] = value
        elif isinstance(value, str):
            clean[key] = value[:MAX_TEXT]
        elif isinstance(value, float) and math.isfinite(value):
            clean[key] = value
    return clean


def parse_entry(entry: Mapping[str, Any]) -> LedgerEntry:
    """Return a ledger entry as a typed :class:`LedgerEntry` (record None if it is unreadable).

    Missing fields of a record take their defaults; a record missing a field without one, or
    holding a wrongly typed value, is unreadable and gives ``record=None``, so the rules treat
    it as an entry of unknown content rather than guessing.
    """
    clean = clean_entry(entry)
    raw_kind = clean.get("kind")
    kind = raw_kind if isinstance(raw_kind, str) else ""
    cls = RECORD_TYPES.get(kind)
    record = None
    if cls is not None:
        names = {f.name for f in fields_of(cls)}
        try:
            record = cls(**{k: v for k, v in clean.items() if k in names})
        except TypeError:  # a required field is missing or was dropped as wrongly typed
            record = None
    context = {k: clean.get(k) for k in CONTEXT_FIELDS}
    known = {"kind", *CONTEXT_FIELDS, *(f.name for f in fields_of(cls))} if cls else set()
    known |= {"kind", *CONTEXT_FIELDS}
    extra = {k: v for k, v in clean.items() if k not in known and k != "kind"}
    return LedgerEntry(record=record, kind=kind, extra=extra, **context)


_INVALID = object()


def _checked(value: Any, annotation: Any) -> Any:
    """Return ``value`` if it has type ``annotation`` (shortened), else ``_INVALID``."""
    options = get_args(annotation) if _is_union(annotation) else (annotation,)
    for option in options:
        if option is type(None):
            if value is None:
                return None
            continue
        if get_origin(option) is list:
            (item,) = get_args(option)
            if isinstance(value, list):
                return [
                    v[:MAX_TEXT] if isinstance(v, str) else v
                    for v in value[:MAX_LIST]
                    if _scalar_ok(v, item)
                ]
            continue
        if _scalar_ok(value, option):
            return value[:MAX_TEXT] if isinstance(value, str) else value
    return _INVALID


def _scalar_ok(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:  # a count must not be True
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok and math.isfinite(value)
    return isinstance(value, kind)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _p_count(value: Any) -> bool:
    count = isinstance(value, int) and not isinstance(value, bool)
    return count and 0 <= value <= MAX_P_VALUES


def _controls(names: list[str]) -> list[str]:
    return sorted({control_name(n) for n in names})


# -- schema for other languages -------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """Return a JSON Schema (draft 2020-12) of a ledger entry: one branch per record kind."""
    context = {name: _schema_of(t) for name, t in CONTEXT_FIELDS.items()}
    branches = {}
    for kind, cls in RECORD_TYPES.items():
        props = {"kind": {"const": kind}, **{n: _schema_of(t) for n, t in field_types(cls).items()}}
        required = ["kind"] + [
            f.name
            for f in fields_of(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        branches[kind] = {
            "type": "object",
            "title": cls.__name__,
            "description": (cls.__doc__ or "").strip().splitlines()[0],
            "properties": {**props, **context},
            "required": required,
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "interp-magics ledger entry",
        "schema_version": SCHEMA,
        "oneOf": [{"$ref": f"#/$defs/{kind}"} for kind in branches],
        "$defs": branches,
        "controls": list(CONTROLS),
    }


def _schema_of(annotation: Any) -> dict[str, Any]:
    if _is_union(annotation):
        return {"anyOf": [_schema_of(a) for a in get_args(annotation)]}
    if annotation is type(None):
        return {"type": "null"}
    if get_origin(annotation) is list:
        return {"type": "array", "items": _schema_of(get_args(annotation)[0])}
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return {"type": names[annotation]}
