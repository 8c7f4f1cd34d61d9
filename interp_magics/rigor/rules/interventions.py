"""Interventions recognised by what the code does, whatever library makes them.

A forward hook is an intervention when its function returns a value or changes its argument in
place (``output[0][:, pos] = ...``, ``.add_()``, ``+=``), however it is registered: PyTorch's
``register_forward_hook`` / ``register_forward_pre_hook``, TransformerLens ``run_with_hooks``,
``hooks()`` and ``add_hook``, baukit ``TraceDict(edit_output=)``; so are nnsight's assignments
to ``.output`` / ``.input``, pyvene's intervenable models and this package's own patching and
ablation (:data:`~interp_magics.rigor.rules.vocabulary.INTERVENTION_CALLS`). A hook that only
reads (stores a copy) is not. Functions defined in the notebook are followed into their bodies:
calling a notebook function that registers such a hook, directly or through other notebook
functions, is an intervention too.

The module is past 400 lines because each library's way of intervening is recognised here, in
one place, so that every causal rule asks the same question the same way.

Each intervention records what it touches (the numbers in its code: layer and head indices, and
whether it sweeps a loop or reaches attention heads), how it corrupts (Gaussian noise, zeros, or
something on distribution) and how it is scored (a probability, or a logit difference or
log-probability), so rules can tie it to the claim it is meant to support.

The code is parsed once a check (:meth:`Context.shared`), only in cells that define functions or
use a name an intervention needs; the walk is iterative and linear in the code's size.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from ...core.records import (
    AblationRecord,
    FaithfulnessRecord,
    InterventionRecord,
    PatchRecord,
    PathPatchRecord,
)
from ..notebook import Cell
from ..syntax import convert
from .codeshape import (
    edits,
    first,
    metric_of,
    names,
    numbers,
    sets_zero,
    short,
    text,
    variable_index,
    walk,
    writes_model_io,
)
from .context import Context
from .vocabulary import INTERVENTION_CALLS

#: Names without which a cell cannot register or make an intervention (or define a hook).
TRIGGERS = frozenset(
    {
        "register_forward_hook",
        "register_forward_pre_hook",
        "run_with_hooks",
        "hooks",
        "add_hook",
        "output",
        "input",
        "TraceDict",
        "Trace",
        "edit_output",
        "IntervenableModel",
        "fwd_hooks",
    }
)
#: Calls that intervene whatever their arguments: this package's patching and ablation, and
#: other libraries' sweeps. ``run_with_hooks`` intervenes only when a hook it runs edits.
API_CALLS = frozenset(INTERVENTION_CALLS - {"run_with_hooks"})
HOOK_REGISTRARS = frozenset({"register_forward_hook", "register_forward_pre_hook", "add_hook"})
HOOK_RUNNERS = frozenset({"run_with_hooks", "hooks"})
EDITORS = frozenset({"TraceDict", "Trace"})
#: Calls that only store or show what a hook reads: a lambda made of one of them reads.
READ_ONLY_CALLS = frozenset({"append", "update", "extend", "print", "add", "put", "setdefault"})
NOISE = frozenset({"randn", "randn_like", "normal", "normal_", "standard_normal"})
ZERO = frozenset({"zeros", "zeros_like", "zero_"})
#: Names that say an edit writes a direction or subspace (a steering vector, a reading vector,
#: a probe's weights, principal components, a dictionary feature, a learned rotation), not a
#: whole activation.
DIRECTION = re.compile(
    r"direction|steer|vector|(?:^|_)vecs?(?:_|$)|reading|coef_|components_|W_dec|subspace|"
    r"rotat|concept|(?:^|_)dirs?(?:_|$)",
    re.I,
)
#: Library calls that intervene with a learned direction or subspace: pyvene's rotated-space
#: interventions (DAS), RepE's and repeng's control vectors.
DIRECTION_CALLS = frozenset(
    {
        "RotatedSpaceIntervention",
        "BoundlessRotatedSpaceIntervention",
        "LowRankRotatedSpaceIntervention",
        "SigmoidMaskRotatedSpaceIntervention",
        "SigmoidMaskIntervention",
        "set_control",
        "ControlModel",
        "set_controller",
        "WrappedReadingVecModel",
    }
)
#: pyvene intervention classes that add Gaussian noise (its own, or one a notebook defines).
PYVENE_NOISE = re.compile(r"\w{0,40}Noise\w{0,40}Intervention")
#: Text that says code reaches individual attention heads.
HEADS = re.compile(r"head|hook_z|hook_result|hook_pattern|hook_[qkv]\b|\bz\b", re.I)


@dataclass
class Intervention:
    """One place the notebook intervenes on the model, and what it touches."""

    cell: Cell | None  # None: a ledger record of a cell not in this notebook
    line: int
    how: str  # "api", "ledger", "library", "hook", "nnsight", "pyvene", "baukit" or "function"
    corruption: str = "other"  # "noise", "zero" or "other" (counterfactual, mean, resample...)
    metric: str = ""  # "prob", "good" or "" (not known)
    numbers: frozenset[int] = frozenset()
    swept: bool = False  # in a loop, or indexed by a variable: it reaches every layer / head
    heads: bool = False  # its code reaches individual attention heads
    general: bool = False  # the package's API or the ledger: sweeps the whole model
    direction: bool = False  # it adds, patches or projects a learned direction or subspace
    baseline: bool = False  # compared with a random direction of the same norm (the ledger says)


class Component(NamedTuple):
    """A model component a claim names: a layer, a head in a layer, or both left open."""

    layer: int | None
    head: int | None


# -- reading the claim -----------------------------------------------------------------------------

_HEAD_PAIR = re.compile(r"\b(?:heads?\s{0,3}|L)(\d{1,3})[.:H](\d{1,3})\b", re.I)
_HEAD_OF_LAYER = re.compile(
    r"\bheads?\s{0,3}(\d{1,3})\s{0,3}(?:of|in|at)\s{0,3}layer\s{0,3}(\d{1,3})"
)
_LAYER_HEAD = re.compile(r"\blayer\s{0,3}(\d{1,3}),?\s{0,3}head\s{0,3}(\d{1,3})", re.I)
_LAYER = re.compile(
    r"\b(?:layers?|blocks?|mlps?)[\s-]{0,3}(\d{1,3})\b|\b(\d{1,3})(?:st|nd|rd|th)?"
    r"[\s-]{0,3}layers?\b",
    re.I,
)
_HEAD = re.compile(r"\bheads?\s{0,3}(\d{1,3})\b", re.I)


def components(sentence: str) -> list[Component]:
    """Return the components ``sentence`` names by number ("head 1.2", "L1H2", "layer 3")."""
    found: list[Component] = []
    rest = sentence
    for pattern, order in ((_HEAD_PAIR, (1, 2)), (_LAYER_HEAD, (1, 2)), (_HEAD_OF_LAYER, (2, 1))):
        for m in pattern.finditer(rest):
            found.append(Component(int(m.group(order[0])), int(m.group(order[1]))))
        rest = pattern.sub(" ", rest)
    for m in _LAYER.finditer(rest):
        found.append(Component(int(m.group(1) or m.group(2)), None))
    rest = _LAYER.sub(" ", rest)
    found += [Component(None, int(m.group(1))) for m in _HEAD.finditer(rest)]
    return found


def covers(found: Intervention, part: Component) -> bool:
    """Whether intervention ``found`` touches component ``part``."""
    if found.general:
        return True
    if part.layer is not None and not (found.swept or part.layer in found.numbers):
        return False
    return part.head is None or (found.heads and (found.swept or part.head in found.numbers))


def supports(ctx: Context, sentence: str) -> bool:
    """Whether the notebook has an intervention on every component ``sentence`` names.

    A sentence that names no component by number is about the model in general: any
    intervention supports it.
    """
    found = ctx.shared(interventions)
    if not found:
        return False
    return all(any(covers(f, part) for f in found) for part in components(sentence))


# -- finding the interventions ---------------------------------------------------------------------


def interventions(ctx: Context) -> list[Intervention]:
    """Return every intervention in the notebook and the ledger, in notebook order."""
    found = [
        Intervention(cell, call.line, "api", general=True) for cell, call in ctx.find(API_CALLS)
    ]
    found += [
        Intervention(cell, call.line, "library", general=True, direction=True)
        for cell, call in ctx.find(DIRECTION_CALLS | {"pipeline"})
        if call.short != "pipeline" or _steering_pipeline(call.args)
    ]
    found += [
        Intervention(ctx.cell_of(entry), 1, "ledger", general=True)
        for entry in ctx.ledger
        if isinstance(
            entry.record, (PatchRecord, AblationRecord, PathPatchRecord, FaithfulnessRecord)
        )
    ]
    # interventions and steering: edits along a direction say so, and whether a random
    # direction of the same norm was run beside them
    found += [
        Intervention(
            ctx.cell_of(entry),
            1,
            "ledger",
            general=True,
            direction=entry.record.direction,
            baseline=entry.record.baseline is not None,
        )
        for entry in ctx.ledger
        if isinstance(entry.record, InterventionRecord)
    ]
    return found + [_pyvene(ctx, f) if f.how == "pyvene" else f for f in _Reading(ctx).run()]


def _steering_pipeline(args: list[str]) -> bool:
    """Whether a ``pipeline(...)`` call builds RepE's steering pipeline (``"rep-control"``)."""
    return bool(args) and args[0].strip("'\" ") == "rep-control"


def _pyvene(ctx: Context, found: Intervention) -> Intervention:
    """Return a pyvene intervention with what its configuration says it does.

    A pyvene model is built from a configuration naming intervention classes, usually
    elsewhere than the ``IntervenableModel`` call: a rotated-space class makes it an
    intervention along a learned subspace, a noise class a Gaussian-noise corruption.
    """
    used = ctx.names()
    noisy = any(PYVENE_NOISE.fullmatch(name) for name in used)
    return replace(
        found,
        direction=bool(DIRECTION_CALLS & used),
        corruption="noise" if noisy else "zero" if "ZeroIntervention" in used else "other",
    )


@dataclass
class _Function:
    """A function defined in the notebook, as the reading needs it."""

    node: ast.FunctionDef | ast.AsyncFunctionDef
    cell: Cell
    params: set[str]
    writes: bool = False  # returns a value or changes a parameter in place: a hook that edits
    sites: list[Intervention] = field(default_factory=list)  # interventions in its body
    callees: set[str] = field(default_factory=set)
    calls_in_loop: bool = False  # some call of it is inside a loop


class _Reading:
    """One pass over the notebook's parsed cells: functions first, then interventions."""

    def __init__(self, ctx: Context) -> None:
        self.trees: list[tuple[Cell, ast.Module]] = []
        for cell in ctx.nb.code():
            facts = cell.facts
            if facts and (facts.functions or TRIGGERS & facts.names):
                try:
                    self.trees.append((cell, ast.parse(convert(cell.source).code)))
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    continue
        self.functions: dict[str, _Function] = {}
        self.parents: dict[ast.AST, ast.AST] = {}
        self._names: dict[int, set[str]] = {}  # id(node) -> names(node), read once a node

    def run(self) -> list[Intervention]:
        """Return the interventions the parsed cells make, following notebook functions."""
        for cell, tree in self.trees:
            for node in walk(tree, self.parents):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    params = {a.arg for a in (*node.args.posonlyargs, *node.args.args)}
                    params |= {a.arg for a in node.args.kwonlyargs}
                    self.functions[node.name] = _Function(node, cell, params)
        for f in self.functions.values():
            f.writes = edits(f.node, f.params)
        direct: list[Intervention] = []
        calls: list[tuple[Cell, ast.Call, _Function | None]] = []
        for cell, tree in self.trees:
            for node in walk(tree, self.parents):
                if isinstance(node, ast.Tuple):
                    site = self._hook_pair(cell, node)
                elif isinstance(node, (ast.Call, ast.Assign, ast.AugAssign)):
                    site = self._site(cell, node)
                else:
                    continue
                if site:
                    direct.append(site)
                    if owner := self._owner(node):
                        owner.sites.append(site)
                if isinstance(node, ast.Call) and (callee := self.functions.get(short(node))):
                    owner = self._owner(node)
                    calls.append((cell, node, owner))
                    callee.calls_in_loop |= self._in_loop(node)
                    if owner:
                        owner.callees.add(callee.node.name)
        found = direct + self._through_functions(calls)
        # the walk goes through a cell's nodes in no particular order
        return sorted(found, key=lambda f: (f.cell.index if f.cell else 0, f.line))

    def _through_functions(
        self, calls: list[tuple[Cell, ast.Call, _Function | None]]
    ) -> list[Intervention]:
        """Return an intervention at each call of a notebook function that intervenes."""
        intervening = {name for name, f in self.functions.items() if f.sites}
        callers: dict[str, set[str]] = {}
        for name, f in self.functions.items():
            for callee in f.callees:
                callers.setdefault(callee, set()).add(name)
        todo = list(intervening)
        while todo:  # each function enters once: linear in the call graph
            for caller in callers.get(todo.pop(), ()):
                if caller not in intervening:
                    intervening.add(caller)
                    todo.append(caller)
        out = []
        for cell, node, _ in calls:
            function = self.functions[short(node)]
            if function.node.name not in intervening:
                continue
            inner = self._inner_sites(function.node.name)
            out.append(
                Intervention(
                    cell,
                    node.lineno,
                    "function",
                    first(s.corruption for s in inner if s.corruption != "other") or "other",
                    first(s.metric for s in inner if s.metric)
                    or metric_of(self.names(function.node)),
                    frozenset().union(*(s.numbers for s in inner), numbers(node)),
                    any(s.swept for s in inner) or self._in_loop(node) or function.calls_in_loop,
                    any(s.heads for s in inner) or bool(HEADS.search(text(node))),
                    direction=any(s.direction for s in inner),
                )
            )
        return out

    def _inner_sites(self, name: str) -> list[Intervention]:
        """Return the interventions in function ``name`` and the notebook functions it calls."""
        seen, todo, out = {name}, [name], []
        while todo:
            f = self.functions[todo.pop()]
            out += f.sites
            for callee in f.callees - seen:
                seen.add(callee)
                todo.append(callee)
        return out

    def _owner(self, node: ast.AST) -> _Function | None:
        """Return the innermost notebook function ``node`` is in, if any."""
        while (node := self.parents.get(node)) is not None:  # type: ignore[assignment]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return self.functions.get(node.name)
        return None

    def _in_loop(self, node: ast.AST) -> bool:
        """Whether ``node`` is inside a loop or comprehension (within its own function)."""
        while (node := self.parents.get(node)) is not None:  # type: ignore[assignment]
            if isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.comprehension)):
                return True
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return False
        return False

    def names(self, node: ast.AST) -> set[str]:
        """Return the names ``node`` uses (read once a node: many sites share a function)."""
        if id(node) not in self._names:
            self._names[id(node)] = names(node)
        return self._names[id(node)]

    def _hook_pair(self, cell: Cell, pair: ast.Tuple) -> Intervention | None:
        """Return the intervention a TransformerLens ``(hook name, hook)`` pair makes, if its
        hook edits: such pairs are built in one place and run elsewhere (``fwd_hooks=``)."""
        if len(pair.elts) != 2 or not isinstance(pair.elts[0], (ast.Constant, ast.JoinedStr)):
            return None
        if "hook" not in text(pair.elts[0]):
            return None
        hooks = [h for h in self._hook_functions_in(pair.elts[1]) if self._edits_hook(h)]
        return self._make(cell, pair, "hook", [pair, *hooks]) if hooks else None

    def _site(self, cell: Cell, node: ast.Call | ast.Assign | ast.AugAssign) -> Intervention | None:
        """Return the intervention ``node`` makes, if it makes one."""
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if not any(writes_model_io(t) for t in targets):
                return None
            return self._make(cell, node, "nnsight", [node])
        called = short(node)
        if called == "IntervenableModel":  # which layers is in its config, built elsewhere
            return replace(self._make(cell, node, "pyvene", [node]), swept=True, heads=True)
        hooks: list[ast.AST] = []
        if called in HOOK_REGISTRARS or called in HOOK_RUNNERS:
            hooks = [h for h in self._hook_functions(node) if self._edits_hook(h)]
            how = "hook"
        elif called in EDITORS:
            edit = next((k.value for k in node.keywords if k.arg == "edit_output"), None)
            hooks = [edit] if edit is not None else []
            how = "baukit"
        if not hooks:
            return None
        return self._make(cell, node, how, [node, *hooks])

    def _hook_functions(self, call: ast.Call) -> Iterator[ast.AST]:
        """Yield the hook functions a registering call passes (names, lambdas, partials)."""
        for arg in (*call.args, *(k.value for k in call.keywords)):
            yield from self._hook_functions_in(arg)

    def _hook_functions_in(self, arg: ast.AST) -> Iterator[ast.AST]:
        """Yield the lambdas and notebook functions named in ``arg``."""
        for node in ast.walk(arg):
            if isinstance(node, ast.Lambda) or (
                isinstance(node, ast.Name) and node.id in self.functions
            ):
                yield node

    def _edits_hook(self, hook: ast.AST) -> bool:
        """Whether hook function ``hook`` returns a value or edits what it is given."""
        if isinstance(hook, ast.Lambda):
            body = hook.body
            return not (
                isinstance(body, ast.Constant)
                or (isinstance(body, ast.Call) and short(body) in READ_ONLY_CALLS)
            )
        return isinstance(hook, ast.Name) and self.functions[hook.id].writes

    def _make(self, cell: Cell, node: ast.AST, how: str, parts: list[ast.AST]) -> Intervention:
        """Return the intervention made at ``node`` by the code in ``parts`` (and hooks named).

        How it corrupts and scores is read from the hooks and the function it is made in (the
        noise of causal tracing is often added in the same function that restores states).
        """
        owner = self._owner(node)
        bodies = [self.functions[p.id].node for p in parts if isinstance(p, ast.Name)]
        code = [*parts, *bodies, *([owner.node] if owner else [])]
        names = set().union(*(self.names(c) for c in code))
        words = " ".join(text(p) for p in (*parts, *bodies))
        zeroed = ZERO & names or any(sets_zero(c) for c in (*parts, *bodies))
        corruption = "noise" if NOISE & names else "zero" if zeroed else "other"
        cell_names = cell.facts.names if cell.facts else set()
        metric = metric_of(names) or ("" if owner else metric_of(cell_names))
        swept = self._in_loop(node) or variable_index(node)
        edit_names = set().union(*(self.names(c) for c in (*parts, *bodies)))
        return Intervention(
            cell,
            getattr(node, "lineno", 1),
            how,
            corruption,
            metric,
            frozenset(numbers(*parts, *bodies)),
            swept,
            bool(HEADS.search(words)),
            direction=any(DIRECTION.search(n) for n in edit_names) or bool(DIRECTION_CALLS & names),
        )
