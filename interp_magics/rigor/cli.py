"""``interp-rigor``: check notebooks for methodological gaps from the command line.

    interp-rigor PATH...                 # text; exit 1 when an error-level finding remains
    interp-rigor PATH... --format json   # or sarif, for code-scanning interfaces
    interp-rigor run NOTEBOOK            # execute a copy with the extension loaded, then check
                                         # with the ledger of what actually ran
    interp-rigor --explain PRB001        # the rule's page: what it flags, why, examples, papers

Exit status: 0 no unsuppressed errors, 1 unsuppressed errors, 2 unreadable input or bad usage.
Never a traceback: whatever a notebook or ledger file holds ends in a message and status 2.
Everything printed that comes from a notebook is escaped (:func:`~.report.printable`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from . import RULES, check
from .ledger_file import LedgerFileError, read_ledger_file
from .notebook import NotebookError
from .report import Finding, Findings, printable, to_json, to_sarif


class _UsageError(Exception):
    """Bad usage: argparse's message, printed with the usage line and status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="interp-rigor",
        description="Check interpretability notebooks for missing controls, uncorrected "
        "comparisons, causal claims without interventions and other methodological gaps.",
        epilog="rules: " + ", ".join(f"{r.id} {r.title}" for r in RULES.values()),
    )
    p.add_argument(
        "paths", nargs="*", help="notebooks (.ipynb); 'run NOTEBOOK' executes a copy first"
    )
    p.add_argument(
        "--explain",
        metavar="RULE",
        help="print the page of a rule (what it flags, why, accepted alternatives, a flawed and "
        "a fixed example, references) and exit",
    )
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    p.add_argument("--select", help="comma-separated rule ids or prefixes to run (e.g. PRB,STA001)")
    p.add_argument("--ignore", help="comma-separated rule ids or prefixes to skip")
    p.add_argument(
        "--no-suppress", action="store_true", help="report suppressed findings as active"
    )
    p.add_argument("--ledger", help="a ledger JSON file to add to the static reading")
    p.add_argument("--timeout", type=int, default=600, help="per-cell timeout for 'run' (seconds)")
    return p


def _split(text: str | None) -> list[str] | None:
    return [t for t in text.split(",") if t.strip()] if text else None


def _error(message: str, limit: int = 2000) -> None:
    """Print ``message`` to stderr, escaped and shortened (it may quote a notebook)."""
    text = message if len(message) <= limit else message[: limit - 1] + "…"
    print(f"interp-rigor: {printable(text)}", file=sys.stderr)


def run_notebook(path: Path, timeout: int = 600) -> dict[str, Any]:
    """Return the ledger of executing a copy of ``path`` with the extension loaded.

    The original file is only read. The copy runs in a temporary folder next to nothing else,
    with its working directory set to the notebook's own folder so relative paths still work.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    work = tempfile.mkdtemp(prefix="interp-rigor-")
    out = Path(work) / "ledger.json"
    load = nbformat.v4.new_code_cell("%load_ext interp_magics")
    dump = nbformat.v4.new_code_cell(
        "import json as _json\nfrom interp_magics.jupyter import get_ledger as _get_ledger\n"
        f"open({str(out)!r}, 'w').write(_json.dumps(_get_ledger(get_ipython()).to_json()))"
    )
    load["id"], dump["id"] = "interp-rigor-load", "interp-rigor-dump"
    nb.cells = [load, *nb.cells, dump]
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    if not out.exists():
        raise NotebookError(f"running {path} did not produce a ledger (the kernel may have died)")
    ledger: dict[str, Any] = json.loads(out.read_text())
    return ledger


def explain(rule_id: str) -> int:
    """Print the page of ``rule_id``; return the exit status (2 for an unknown rule)."""
    from .pages import render_page

    try:
        page = render_page(rule_id, "text")
    except KeyError:
        known = rule_id.strip().upper() in RULES
        _error(f"rule {rule_id} has no page" if known else f"no rule {rule_id!r}; the rules are:")
        if not known:
            print("\n".join(f"  {r.id}  {r.title}" for r in RULES.values()), file=sys.stderr)
        return 2
    sys.stdout.write(page)
    return 0


def _check_one(path: Path, args: argparse.Namespace, ledger: Any, execute: bool) -> Findings:
    """Return the findings of one notebook (running it first with ``run``)."""
    if execute:
        ledger = run_notebook(path, args.timeout)
    return check(
        path,
        ledger=ledger,
        select=_split(args.select),
        ignore=_split(args.ignore),
        suppress=not args.no_suppress,
        name=str(path),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        return _main(argv)
    except _UsageError as exc:
        print(printable(str(exc)), file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    from ..version import __version__

    args = _parser().parse_args(argv)
    if args.explain is not None:
        return explain(args.explain)
    paths = list(args.paths)
    execute = bool(paths) and paths[0] == "run"
    if execute:
        paths = paths[1:]
    if not paths:
        what = "the notebook to execute" if execute else "one or more notebooks to check"
        raise _UsageError(f"interp-rigor: error: give {what} (or --explain RULE)")
    findings: list[Finding] = []
    status = 0
    ledger_file = None
    if args.ledger:
        try:
            ledger_file = read_ledger_file(Path(args.ledger))
        except LedgerFileError as exc:
            _error(str(exc))
            return 2
    checked = 0
    for name in paths:
        try:
            findings.extend(_check_one(Path(name), args, ledger_file, execute))
            checked += 1
        except NotebookError as exc:
            _error(str(exc))
            status = 2
        except Exception as exc:  # never a traceback: say which file and what went wrong
            _error(f"cannot check {name}: {type(exc).__name__}: {exc}")
            status = 2
    if not checked:  # every file failed: a report would read as "no findings"
        return status
    if args.format == "json":
        print(to_json(findings))
    elif args.format == "sarif":
        print(to_sarif(findings, RULES, __version__))
    else:
        print(repr(Findings(findings)))
    if status:
        return status
    return 1 if any(f.severity == "error" and not f.suppressed for f in findings) else 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
