"""The lens widget's Python side: what it sends (bytes per cell, round trips to the result's
values), what a hover gets from the kernel, how it follows the example and the clicked position,
and its static fallbacks (the result's own PNG, text and a script-free table).

The front end's reading of the same bytes is tested in widgets/test/lens-decode.test.ts, its
drawing in the browser (tests/test_browser_lens.py).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import traitlets

from interp_magics import lens, testing, toy
from interp_magics.lens import LensResult
from interp_magics.widgets import LensView
from interp_magics.widgets.lens import (
    LEVELS,
    TEXT_COLUMNS,
    code_range,
    level_colours,
    prob_codes,
    unpack_codes,
    wire_bytes,
)


def synthetic(n_layers: int = 32, n_pos: int = 512, n_ex: int = 2, k: int = 5) -> LensResult:
    """Return a LensResult of a 32-layer model over 512 positions with random numbers.

    Token ids are drawn from 10000..50256 and shown as their numbers (no tokenizer): five
    characters a label, about a GPT-2 token's length with its space marker.
    """
    g = torch.Generator().manual_seed(0)
    rows = n_layers + 1
    scale = torch.linspace(0.5, 4.0, rows)[:, None, None, None]
    probs = (torch.randn(rows, n_ex, n_pos, 64, generator=g) * scale).softmax(-1)
    top, _ = probs.topk(k, dim=-1)
    return LensResult(
        method="logit lens",
        model="Synthetic32",
        n_layers=n_layers,
        layers=tuple(range(rows)),
        layer_labels=["embed"] + [f"L{i}" for i in range(n_layers)],
        positions=tuple(range(n_pos)),
        top_ids=torch.randint(10000, 50257, (rows, n_ex, n_pos, k), generator=g),
        top_probs=top,
        entropy=torch.zeros(rows, n_ex, n_pos),
        kl_to_final=torch.zeros(rows, n_ex, n_pos),
        input_ids=torch.randint(10000, 50257, (n_ex, n_pos), generator=g),
        attention_mask=torch.ones(n_ex, n_pos, dtype=torch.long),
        answer=torch.randint(10000, 50257, (n_ex,), generator=g),
        answer_logprob=torch.rand(rows, n_ex, n_pos, generator=g).log(),
        answer_rank=torch.randint(0, 50257, (rows, n_ex, n_pos), generator=g),
    )


@pytest.fixture(scope="module")
def toy_lens():
    """The toy induction model's logit lens on 4 repeated sequences, answer = the next token."""
    ids = toy.repeated_sequences(4, seed=0)
    return lens.logit_lens(toy.load(), ids[:, :-1], answer=ids[:, -1])


# -- the encodings ------------------------------------------------------------------------------


def test_probability_codes_round_trip_within_one_step():
    p = torch.tensor([0.0, 1e-9, 0.0624, 0.0625, 0.5, 0.93751, 0.999, 1.0, 0.3])  # odd count
    data = prob_codes(p)
    assert len(data) == math.ceil(p.numel() / 2)
    codes = unpack_codes(data, p.numel())
    assert codes.tolist() == [0, 0, 0, 1, 8, 15, 15, 15, 4]  # floor(p * 16), 1 in the top step
    lo, hi = code_range(codes.astype(float))
    pv = p.numpy()
    assert np.all(lo <= pv) and np.all((pv < hi) | (pv == 1.0))
    assert np.all(hi - lo == pytest.approx(1 / LEVELS))


def test_level_colours_are_the_map_at_each_steps_middle():
    import matplotlib

    table = np.frombuffer(level_colours("Blues"), dtype=np.uint8).reshape(LEVELS, 3)
    cmap = matplotlib.colormaps["Blues"]
    for c in (0, 7, 15):
        # colors.lut samples 256 rows; a step's colour is the row nearest its middle
        row = round((c + 0.5) / LEVELS * 255)
        want = np.round(np.array(cmap(row / 255)[:3]) * 255)
        assert table[c].tolist() == want.astype(int).tolist()
    light = table.astype(float) @ [0.2126, 0.7152, 0.0722]
    assert np.all(np.diff(light) < 0)  # darker with probability: one order, no ambiguity


@pytest.mark.parametrize("n_layers", [31, 32])
def test_first_view_of_512_positions_costs_under_a_byte_per_cell(n_layers):
    result = synthetic(n_layers=n_layers)
    view = LensView(result)
    rows, cols = n_layers + 1, 512
    size = view.payload_bytes()
    assert size["cells"] == rows * cols
    # measured independently: every synced trait but the code, as the comm carries it
    state = {k: v for k, v in view.get_state().items() if k not in ("_esm", "_css")}
    assert size["data"] == wire_bytes(state)
    binary = sum(len(v) for v in state.values() if isinstance(v, bytes | memoryview))
    assert binary < size["data"] < rows * cols
    assert size["per_cell"] < 1.0, size
    assert len(view.codes) == rows * cols // 2  # half a byte a cell
    assert view.top1 == b"" and view.top1_vocab == []  # 512 columns: no text to draw
    assert view.pad == b""  # no padding, no mask sent
    # the probabilities come back from the bytes within one step of the result's
    codes = unpack_codes(view.codes, rows * cols).reshape(rows, cols)
    lo, hi = code_range(codes.astype(np.float64))
    p = result.top_probs[:, 0, :, 0].double().numpy()
    assert np.all(lo <= p + 1e-12) and np.all(p < hi + 1e-12)
    assert np.abs((lo + hi) / 2 - p).max() <= 0.5 / LEVELS
    print(f"rows {rows} x 512: {size['data']} bytes, {size['per_cell']:.3f} bytes per cell")


def test_json_lists_would_cost_twenty_times_more():
    # what the bytes save: the same probabilities as a JSON list of floats
    result = synthetic(n_layers=32)
    view = LensView(result)
    as_json = len(json.dumps(result.top_probs[:, 0, :, 0].reshape(-1).tolist()))
    assert as_json > 15 * view.payload_bytes()["data"]


# -- the toy model's lens ------------------------------------------------------------------------


def test_toy_view_carries_the_top1_tokens_and_the_trajectory(toy_lens):
    r = toy_lens
    view = r.widget()
    assert isinstance(view, LensView)
    rows, cols = len(r.layers), len(r.positions)
    assert cols <= TEXT_COLUMNS and view.meta["text"] is True
    assert view.meta["layer_labels"] == ["embed", "L0", "L1"]
    assert view.tokens == r.input_tokens(0)
    # the top-1 token of every cell, through the table and its uint16 indices
    index = np.frombuffer(view.top1, dtype="<u2").reshape(rows, cols)
    shown = [[view.top1_vocab[i] for i in row] for row in index.tolist()]
    ids = r.top_ids[:, 0, :, 0].tolist()
    assert shown == [[r.tokenizer.convert_ids_to_tokens([t])[0] for t in row] for row in ids]
    # the trajectory of the last real token: the answer's probability and rank at each layer
    last = r.last_position(0)
    assert view.trajectory_col == last == cols - 1
    traj = np.frombuffer(view.trajectory, dtype="<f4").reshape(2, rows)
    frame = r.trajectory(0)
    assert traj[0] == pytest.approx(frame["answer_prob"].to_numpy(), rel=1e-6)
    assert traj[1].tolist() == frame["answer_rank"].tolist()
    assert frame["answer_rank"].iloc[-1] == 0  # the induction head puts the answer on top
    assert view.answer == r.tokenizer.convert_ids_to_tokens([int(r.answer[0])])[0]


def test_a_hover_gets_the_columns_top_k_from_the_kernel(toy_lens, monkeypatch):
    r = toy_lens
    view = LensView(r)
    sent: list[dict] = []
    monkeypatch.setattr(view, "send", lambda content, buffers=None: sent.append(content))
    view._on_message(view, {"type": "column", "id": 7, "example": 2, "col": 30}, [])
    (reply,) = sent
    assert reply["id"] == 7 and (reply["example"], reply["col"]) == (2, 30)
    for row in range(len(r.layers)):
        want = r.tokenizer.convert_ids_to_tokens(r.top_ids[row, 2, 30].tolist())
        assert reply["tokens"][row] == want
        assert reply["probs"][row] == pytest.approx(r.top_probs[row, 2, 30].tolist())
    assert reply["answer_rank"] == r.answer_rank[:, 2, 30].tolist()
    assert reply["answer_prob"] == pytest.approx(r.answer_logprob[:, 2, 30].exp().tolist())
    # a column outside the grid gets an error that says what to choose
    view._on_message(view, {"type": "column", "id": 8, "example": 0, "col": 99}, [])
    assert sent[-1]["id"] == 8 and "0..31" in sent[-1]["error"]
    assert len(json.dumps(reply)) < 2000  # a hover costs a small message, not the grid


def test_the_view_follows_the_example_and_the_clicked_position(toy_lens):
    r = toy_lens
    view = LensView(r)
    view.selected = [1, 12]
    traj = np.frombuffer(view.trajectory, dtype="<f4").reshape(2, -1)
    assert view.trajectory_col == 12
    assert traj[1].tolist() == r.answer_rank[:, 0, 12].tolist()
    view.example = 3
    assert view.selected == [] and view.trajectory_col == r.last_position(3)
    codes = unpack_codes(view.codes, 3 * 32).reshape(3, 32)
    assert codes.tolist() == torch.floor(r.top_probs[:, 3, :, 0] * 16).clamp(max=15).int().tolist()
    assert view.tokens == r.input_tokens(3)
    assert view.answer == r.tokenizer.convert_ids_to_tokens([int(r.answer[3])])[0]
    with pytest.raises(traitlets.TraitError, match="inside 3 x 32"):
        view.selected = [3, 0]
    with pytest.raises(ValueError, match=r"example 4 is out of range: choose 0\.\.3"):
        view.example = 4
    with pytest.raises(ValueError, match="example 9 is out of range"):
        LensView(r, example=9)


def test_padding_is_marked_and_the_trajectory_starts_at_the_last_real_token():
    ids = toy.repeated_sequences(2, seed=1)[:, :-1]
    mask = torch.ones_like(ids)
    mask[1, -5:] = 0  # the second example is 5 tokens shorter (right padding)
    result = lens.logit_lens(toy.load(), {"input_ids": ids, "attention_mask": mask}, answer=[3, 4])
    view = LensView(result, example=1)
    assert list(view.pad) == [0] * 27 + [1] * 5
    assert view.trajectory_col == 26 == result.last_position(1)
    view.example = 0
    assert view.pad == b""
    # kept positions that are all padding for an example: its trajectory is of the last column
    tail = lens.logit_lens(
        toy.load(), {"input_ids": ids, "attention_mask": mask}, answer=[3, 4], positions="27:"
    )
    view = LensView(tail, example=1)
    assert list(view.pad) == [1] * 5 and view.trajectory_col == 4


# -- a model without an answer, and the static fallbacks -----------------------------------------


def test_gpt2_without_an_answer_has_no_trajectory_and_its_fallbacks_hold_the_numbers():
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 97, (2, 7), generator=g)
    result = lens.logit_lens(testing.gpt2(), ids)
    view = LensView(result)
    assert view.trajectory == b"" and view.answer == "" and view.meta["has_answer"] is False
    assert view.trajectory_col == 6
    data, _ = result._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/plain"] == result.describe()
    assert data["image/png"] == result._repr_png_()  # the result's own static picture
    page = data["text/html"]
    assert "<script" not in page and "data:image/png;base64," in page
    frame = result.trajectory(0)
    for label, top in zip(frame["layer_label"], frame["top_token"], strict=True):
        assert f"<td>{label}</td><td>{top}</td>" in page
    assert "answer_rank" not in page


class MarkupTokens:
    """A tokenizer whose every token looks like HTML (token text is data, never markup)."""

    def convert_ids_to_tokens(self, ids):
        return [f"<b>{i}</b>" for i in ids]


def test_fallback_table_gives_the_answer_and_escapes_tokens(toy_lens):
    view = LensView(toy_lens)
    view.selected = [0, 5]
    page = view.fallback_html(b"png")
    frame = toy_lens.trajectory(0, 5)
    assert "position 5" in page and "<th>answer_rank</th>" in page
    first = frame.iloc[0]
    assert f"<td>{first['answer_rank']}</td><td>{first['answer_prob']:.4g}</td>" in page
    marked = synthetic(n_layers=1, n_pos=3, n_ex=1)
    marked.tokenizer = MarkupTokens()
    page = LensView(marked).fallback_html(b"png")
    assert "<b>" not in page and "&lt;b&gt;" in page
