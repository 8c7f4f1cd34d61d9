"""Every notebook in tutorials/ runs end to end in a fresh kernel, and shows what it promises."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("*.ipynb"))


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
        parts.append(out.get("data", {}).get("text/html", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    done = {}
    for path in TUTORIALS:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        done[path.name] = nb
    return done


def test_there_are_tutorials():
    assert [p.name for p in TUTORIALS][:1] == ["00_quickstart.ipynb"]


@pytest.mark.parametrize("name", [p.name for p in TUTORIALS])
def test_tutorial_runs_without_errors(executed, name):
    nb = executed[name]
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_quickstart_shows_tables_equalities_and_the_guard(executed):
    cells = [c for c in executed["00_quickstart.ipynb"].cells if c.cell_type == "code"]
    text = [_text(c) for c in cells]
    magic = next(
        t
        for c, t in zip(cells, text, strict=True)
        if c.source.startswith('%%activations model -m "transformer')
    )
    assert "ActivationCache of GPT2LMHeadModel: 8 tensors" in magic and "<table>" in magic
    assert "(4, 16, 128)" in magic and "2 pad positions" not in magic
    assert any("torch.Size([4, 4, 16, 128])" in t for t in text)  # stacked MLP outputs
    assert any("equal output_hidden_states exactly" in t for t in text)
    assert any("CaptureBudgetError - this capture needs about" in t for t in text)
    assert any("'eager' implementation" in t for t in text)
    assert text[-1].strip() == "[]"  # owned_hooks() after everything
