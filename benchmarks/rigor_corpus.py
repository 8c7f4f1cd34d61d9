"""Per-rule precision and recall of the rigor checker on a corpus of real public notebooks.

The corpus is ``benchmarks/rigor_corpus/``: ``manifest.json`` pins each notebook's source
(repository, commit, path, licence, sha256) and whether it is held out; ``labels/<id>.json``
says, for every rule, whether a careful reviewer expects a finding ("expect"), would call one a
false alarm ("must_not_fire") or cannot tell ("unclear", left out of the figures). The labels
were written from the rule pages before any rule was tuned on the notebooks; the held-out part
is never used to tune a rule.

The notebooks themselves are not stored in this repository: put them in one folder as
``<id>.ipynb`` (each entry's ``url`` is the pinned raw file) and run::

    .venv/bin/python benchmarks/rigor_corpus.py --notebooks FOLDER
    .venv/bin/python benchmarks/rigor_corpus.py --notebooks FOLDER --part tuning --details
    .venv/bin/python benchmarks/rigor_corpus.py --notebooks FOLDER --record   # new baseline
    .venv/bin/python benchmarks/rigor_corpus.py --notebooks FOLDER --check    # exit 1 on a drop

``--check`` compares with ``rigor_corpus/recorded.json`` and fails when a part's recall drops,
its false-alarm rate rises, or a notebook crashes the checker.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from interp_magics.rigor import RULES, check

HERE = Path(__file__).parent / "rigor_corpus"
PARTS = ("tuning", "held-out")


@dataclass
class Tally:
    """Counts of one rule (or all rules) on one part of the corpus."""

    tp: int = 0  # expected and found
    fn: int = 0  # expected and missed
    fp: int = 0  # must not fire, fired
    tn: int = 0  # must not fire, silent
    unclear: int = 0
    missed: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        """Add ``other``'s counts to this one."""
        self.tp += other.tp
        self.fn += other.fn
        self.fp += other.fp
        self.tn += other.tn
        self.unclear += other.unclear

    @property
    def recall(self) -> float | None:
        """Return the share of expected findings that were found."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def precision(self) -> float | None:
        """Return the share of findings on labelled rules that were expected."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def false_alarm_rate(self) -> float | None:
        """Return the share of must-not-fire labels that fired."""
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else None


def load_corpus(folder: Path) -> list[dict]:
    """Return the manifest entries with their labels, each checked against its sha256."""
    manifest = json.loads((HERE / "manifest.json").read_text())["notebooks"]
    out = []
    for entry in manifest:
        labels_file = HERE / "labels" / f"{entry['id']}.json"
        if not labels_file.exists():
            raise SystemExit(f"no labels for {entry['id']}: write {labels_file}")
        path = folder / f"{entry['id']}.ipynb"
        if not path.exists():
            raise SystemExit(f"{path} is missing: download {entry['url']}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise SystemExit(f"{path} is not the pinned revision (sha256 {digest[:12]}...)")
        labels = json.loads(labels_file.read_text())["labels"]
        unknown = set(labels) - set(RULES)
        if unknown:
            raise SystemExit(f"{labels_file} labels rules the checker does not have: {unknown}")
        out.append({**entry, "file": path, "labels": labels})
    return out


def measure(corpus: list[dict], parts: tuple[str, ...]) -> dict:
    """Return per-part, per-rule tallies, crashes and check times."""
    result: dict = {
        p: {"rules": {r: Tally() for r in RULES}, "crashes": [], "seconds": []} for p in parts
    }
    for entry in corpus:
        part = "held-out" if entry["held_out"] else "tuning"
        if part not in parts:
            continue
        here = result[part]
        start = time.perf_counter()
        try:
            fired = {f.rule for f in check(entry["file"], suppress=False)}
        except Exception as exc:  # a crash is a figure of its own
            here["crashes"].append(f"{entry['id']}: {type(exc).__name__}: {exc}")
            continue
        here["seconds"].append(time.perf_counter() - start)
        for rule_id, label in entry["labels"].items():
            tally = here["rules"][rule_id]
            kind = label["label"]
            if kind == "unclear":
                tally.unclear += 1
            elif kind == "expect":
                if rule_id in fired:
                    tally.tp += 1
                else:
                    tally.fn += 1
                    tally.missed.append(entry["id"])
            elif rule_id in fired:
                tally.fp += 1
                tally.false_alarms.append(entry["id"])
            else:
                tally.tn += 1
        # rules the labels leave out (added after labelling) count as unclear
        for rule_id in set(RULES) - set(entry["labels"]):
            here["rules"][rule_id].unclear += 1
    return result


def summary(part: dict) -> dict:
    """Return a part's totals as plain numbers (what ``--record`` keeps)."""
    total = Tally()
    for tally in part["rules"].values():
        total.add(tally)
    return {
        "expected": total.tp + total.fn,
        "found": total.tp,
        "recall": total.recall,
        "must_not_fire": total.fp + total.tn,
        "false_alarms": total.fp,
        "false_alarm_rate": total.false_alarm_rate,
        "unclear": total.unclear,
        "crashes": len(part["crashes"]),
    }


def _pct(x: float | None) -> str:
    return "  -  " if x is None else f"{100 * x:5.1f}%"


def report(result: dict, details: bool) -> None:
    """Print each part's per-rule table and totals."""
    for part, data in result.items():
        n = len(data["seconds"]) + len(data["crashes"])
        print(f"\n== {part}: {n} notebooks")
        print(
            f"{'rule':8} {'expect':>6} {'found':>5} {'recall':>7} {'mnf':>4} {'false':>5} {'precision':>9}"
        )
        for rule_id, t in data["rules"].items():
            print(
                f"{rule_id:8} {t.tp + t.fn:6d} {t.tp:5d} {_pct(t.recall):>7} {t.fp + t.tn:4d} "
                f"{t.fp:5d} {_pct(t.precision):>9}"
            )
            if details and (t.missed or t.false_alarms):
                if t.missed:
                    print(f"         missed: {', '.join(t.missed)}")
                if t.false_alarms:
                    print(f"         false alarm: {', '.join(t.false_alarms)}")
        s = summary(data)
        print(
            f"total: recall {s['found']}/{s['expected']} = {_pct(s['recall'])}; false alarms "
            f"{s['false_alarms']}/{s['must_not_fire']} = {_pct(s['false_alarm_rate'])}; "
            f"unclear {s['unclear']}; crashes {s['crashes']}"
        )
        if data["seconds"]:
            print(
                f"check time: max {max(data['seconds']):.2f} s, total {sum(data['seconds']):.1f} s"
            )
        for crash in data["crashes"]:
            print(f"CRASH {crash}")


def main() -> int:
    """Measure, print, and record or compare the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("INTERP_RIGOR_CORPUS", "../shared/corpus/rigor")
    parser.add_argument("--notebooks", type=Path, default=Path(default))
    parser.add_argument("--part", choices=(*PARTS, "both"), default="both")
    parser.add_argument("--details", action="store_true", help="list missed and false alarms")
    parser.add_argument("--record", action="store_true", help="write recorded.json")
    parser.add_argument("--check", action="store_true", help="fail on a drop from recorded.json")
    args = parser.parse_args()
    parts = PARTS if args.part == "both" else (args.part,)
    result = measure(load_corpus(args.notebooks), parts)
    report(result, args.details)
    figures = {part: summary(data) for part, data in result.items()}
    recorded_file = HERE / "recorded.json"
    if args.record:
        old = json.loads(recorded_file.read_text()) if recorded_file.exists() else {}
        recorded_file.write_text(json.dumps({**old, **figures}, indent=1) + "\n")
    if args.check:
        recorded = json.loads(recorded_file.read_text())
        drops = []
        for part, now in figures.items():
            was = recorded.get(part)
            if not was:
                continue
            if now["crashes"]:
                drops.append(f"{part}: {now['crashes']} crashes")
            if (now["recall"] or 0) < (was["recall"] or 0) - 1e-9:
                drops.append(f"{part}: recall {now['recall']:.3f} < {was['recall']:.3f}")
            if (now["false_alarm_rate"] or 0) > (was["false_alarm_rate"] or 0) + 1e-9:
                drops.append(
                    f"{part}: false alarms {now['false_alarm_rate']:.3f} > {was['false_alarm_rate']:.3f}"
                )
        if drops:
            print("\n".join(["FIGURES DROPPED:", *drops]), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
