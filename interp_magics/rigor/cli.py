"""``interp-rigor``: check notebooks for methodological gaps from the command line.

    interp-rigor PATH...                 # text; exit 1 when an error-level finding remains
    interp-rigor PATH... --format json   # or sarif, for code-scanning interfaces
    interp-rigor run NOTEBOOK            # execute a copy with the extension loaded, then check
                                         # with the ledger of what actually ran

Exit status: 0 no unsuppressed errors, 1 unsuppressed errors, 2 unreadable input or bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import RULES, check
from .notebook import NotebookError
from .report import Finding, Findings, to_json, to_sarif


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="interp-rigor",
        description="Check interpretability notebooks for missing controls, uncorrected "
        "comparisons, causal claims without interventions and other methodological gaps.",
        epilog="rules: " + ", ".join(f"{r.id} {r.title}" for r in RULES.values()),
    )
    p.add_argument(
        "paths", nargs="+", help="notebooks (.ipynb); 'run NOTEBOOK' executes a copy first"
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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from ..version import __version__

    args = _parser().parse_args(argv)
    paths = list(args.paths)
    execute = bool(paths) and paths[0] == "run"
    if execute:
        paths = paths[1:]
        if not paths:
            print("interp-rigor run: give the notebook to execute", file=sys.stderr)
            return 2
    findings: list[Finding] = []
    status = 0
    ledger_file = None
    if args.ledger:
        try:
            ledger_file = json.loads(Path(args.ledger).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"interp-rigor: cannot read ledger {args.ledger}: {exc}", file=sys.stderr)
            return 2
    for name in paths:
        path = Path(name)
        try:
            ledger = run_notebook(path, args.timeout) if execute else ledger_file
            findings.extend(
                check(
                    path,
                    ledger=ledger,
                    select=_split(args.select),
                    ignore=_split(args.ignore),
                    suppress=not args.no_suppress,
                    name=str(path),
                )
            )
        except NotebookError as exc:
            print(f"interp-rigor: {exc}", file=sys.stderr)
            status = 2
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
