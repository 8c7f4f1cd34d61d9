"""Reproducibility rules (REP): unseeded randomness, and results from edited or reordered cells."""

from __future__ import annotations

import re

from ..facts import Call
from ..registry import METHODOLOGY, Hit, rule
from .context import Context
from .vocabulary import RANDOM_CALLS, SEED_CALLS

RANDOM_MODULES = ("np.random", "numpy.random", "torch", "random", "rng", "gen", "generator")
#: A function that draws examples at random by its name: ``sample_das``, ``factual_sampler``.
SAMPLER = re.compile(r"sample_\w{1,40}|\w{1,40}_sampler|sample_batch|sampler")
SPLITTERS = ("train_test_split", "KFold", "StratifiedKFold", "ShuffleSplit")


@rule(
    "REP001",
    severity="warning",
    title="randomness before a seed is set",
    fix="set seeds first: torch.manual_seed, np.random.seed / np.random.default_rng(seed), "
    "random.seed, or random_state=",
    cite=f"{METHODOLOGY} §Reproducibility; Pineau et al. 2021, ML Reproducibility Checklist",
    alternatives="seeded generators (default_rng(0), torch.Generator().manual_seed(0)), "
    "random_state= arguments",
)
def randomness_before_seed(ctx: Context) -> list[Hit]:
    """Flag the first unseeded random draw that comes before any seed is set.

    Random initialisations, splits and permutations change every result they feed; without a
    seed, a re-run gives different numbers than the ones the notebook reports.
    """
    seeded: set[str] = set()  # the generators seeded so far: "torch", "numpy", "python"
    for cell, call in ctx.calls():
        seeded |= _seeds(call)
        source = _source_of_randomness(call)
        # a helper's draws use whichever generator it uses: any seed may cover them
        if source and source not in seeded and not (source == "any" and seeded):
            return [
                Hit(cell, call.line, f"{call.name} draws random numbers before any seed is set")
                if not seeded
                else Hit(
                    cell,
                    call.line,
                    f"{call.name} draws from the {source} generator, which no seed set so far "
                    f"seeds (only {', '.join(sorted(seeded))})",
                )
            ]
    return []


#: What a seed call seeds. torch.manual_seed does not seed numpy, nor np.random.seed torch.
EVERY_GENERATOR = {"torch", "numpy", "python", "generator"}


def _seeds(call: Call) -> set[str]:
    """Return the generators ``call`` seeds (a seeded ``default_rng`` seeds its own draws)."""
    prefix = call.name.rsplit(".", 1)[0] if "." in call.name else ""
    if call.short in ("default_rng", "RandomState", "Generator") and (call.args or call.kwargs):
        return {"generator"}
    if "Generator" in prefix:  # torch.Generator().manual_seed(0): its own draws only
        return {"generator"}
    if call.short in ("manual_seed", "manual_seed_all"):
        return {"torch"}
    if call.short == "seed":
        if prefix.endswith(("np.random", "numpy.random")):
            return {"numpy"}
        return {"python"} if prefix == "random" else set()
    return set(EVERY_GENERATOR) if call.short in SEED_CALLS else set()


def _source_of_randomness(call: Call) -> str:
    """Return the generator an unseeded random draw uses ("torch", "numpy"...), else ""."""
    if call.short in SPLITTERS:
        seeded = "random_state" in call.kwargs and call.kwargs["random_state"] != "None"
        shuffles = (
            call.short in ("train_test_split", "ShuffleSplit")
            or call.kwargs.get("shuffle") == "True"
        )
        return "numpy" if shuffles and not seeded else ""
    if call.short == "DataLoader":  # shuffles with torch's global generator
        shuffled = call.kwargs.get("shuffle") == "True" and "generator" not in call.kwargs
        return "torch" if shuffled else ""
    if call.kwargs.get("do_sample") == "True":  # generate() or a pipeline that samples
        return "torch"
    if SAMPLER.fullmatch(call.short):  # a data sampler of the notebook's own or a library's
        return "any"
    if call.short == "default_rng":
        return "" if call.args or "seed" in call.kwargs else "unseeded default_rng"
    if call.short not in RANDOM_CALLS or "generator" in call.kwargs:
        return ""
    prefix = call.name.rsplit(".", 1)[0] if "." in call.name else ""
    if prefix.startswith(("np.random", "numpy.random")):
        return "numpy"
    if prefix == "random":
        return "python"
    if prefix.startswith("torch"):
        return "torch"
    return "generator" if prefix.startswith(RANDOM_MODULES) else ""


@rule(
    "REP002",
    severity="warning",
    title="results from cells edited or run out of order",
    fix="restart the kernel and run all cells in order before citing results",
    cite=f"{METHODOLOGY} §Reproducibility",
    alternatives="a clean top-to-bottom run",
)
def edited_or_out_of_order(ctx: Context) -> list[Hit]:
    """Flag a cell run before one above it, and a cell edited after the ledger saw it run.

    Saved outputs then come from an order or a version of the code that a top-to-bottom run
    would not reproduce.
    """
    return _out_of_order(ctx) + _edited_after_run(ctx)


def _out_of_order(ctx: Context) -> list[Hit]:
    """Return a hit on the first code cell whose execution count is below one above it."""
    highest = 0
    for cell in ctx.nb.code():
        if cell.execution_count is None:
            continue
        if cell.execution_count < highest:
            return [
                Hit(
                    cell,
                    1,
                    f"this cell ran as In[{cell.execution_count}], before a cell above it "
                    f"(In[{highest}]): "
                    "the notebook was run out of order, so results may come from a different "
                    "order or version of the code",
                )
            ]
        highest = cell.execution_count
    return []


def _edited_after_run(ctx: Context) -> list[Hit]:
    """Return a hit on the first cell whose source differs from when its ledger entry ran."""
    for entry in ctx.ledger:
        edited = ctx.by_id.get(str(entry.cell_id))
        if edited and entry.source_sha1 and entry.source_sha1 != edited.source_sha1:
            return [
                Hit(
                    edited,
                    1,
                    f"this cell was edited after its {entry.kind or 'analysis'} ran: the "
                    "results shown may not come from this code",
                    "ledger",
                )
            ]
    return []
