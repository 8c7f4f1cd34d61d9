"""LensView: the logit lens (or tuned lens) of one example as a layers x positions grid.

Each cell is a residual stream at a position, coloured by the probability of its top-1 token on
a sequential map (light and dark variants, one colour per probability step), with the token
written in the cell when the cell is wide enough. Hovering shows the top-k tokens of the cell;
clicking picks the position whose answer rank trajectory is drawn beside the grid.

What travels, and why it fits in a byte a cell: the first view of an example carries the top-1
probability of every cell as a 4-bit code (:data:`LEVELS` steps of 1/16, two cells a byte), the
input tokens, and, only when the grid has at most ``text_columns`` positions (so cells can be
wide enough for text), a table of the distinct top-1 tokens with a uint16 index per cell. The
top-k of a position is asked of the kernel when the pointer reaches it (one custom message per
column, all layers at once); the answer's trajectory is sent for the chosen position only. For
32 layers x 512 positions the whole first view is under one byte per cell shown
(:meth:`LensView.payload_bytes`, measured in tests/test_lens_widget.py).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import traitlets

from . import colors
from .base import FallbackWidget

if TYPE_CHECKING:
    from ..lens import LensResult

#: Colour steps of the top-1 probability: code c stands for probabilities in [c/16, (c+1)/16).
LEVELS = 16
#: The most positions for which the top-1 token of every cell is sent with the first view: past
#: this, cells are narrower than a token at any usual width (64 x 24 px is 1536 px).
TEXT_COLUMNS = 64
#: The map on light backgrounds (the PNG's too) and the one on dark backgrounds (low = dim).
COLORMAP, COLORMAP_DARK = "Blues", "Blues_r"


# -- the encodings (the front end's lens/decode.ts reads them) ----------------------------------


def prob_codes(probs: torch.Tensor) -> bytes:
    """Return 4-bit codes of probabilities in [0, 1], two a byte (the first in the high nibble).

    Code ``c`` is the step ``[c/16, (c+1)/16)`` (1 itself is step 15); an odd count ends with a
    zero nibble.
    """
    p = probs.detach().reshape(-1).float().nan_to_num(0.0).clamp(0.0, 1.0).numpy()
    codes = np.minimum(LEVELS - 1, np.floor(p * LEVELS)).astype(np.uint8)
    if codes.size % 2:
        codes = np.append(codes, np.uint8(0))
    return bytes(((codes[0::2] << 4) | codes[1::2]).astype(np.uint8).tobytes())


def unpack_codes(data: bytes, n: int) -> np.ndarray:
    """Return the ``n`` codes that :func:`prob_codes` packed (uint8, 0..15)."""
    packed = np.frombuffer(data, dtype=np.uint8)
    codes = np.empty(packed.size * 2, dtype=np.uint8)
    codes[0::2], codes[1::2] = packed >> 4, packed & 0x0F
    return codes[:n]


def code_range(code: int | np.ndarray) -> tuple[Any, Any]:
    """Return the probabilities ``[low, high)`` a code stands for."""
    return code / LEVELS, (code + 1) / LEVELS


def top1_table(
    label: Callable[[list[int]], list[str]], ids: torch.Tensor
) -> tuple[list[str], bytes]:
    """Return the distinct top-1 tokens (their texts, ``label`` gives them) and a uint16
    little-endian index into them per cell, row-major."""
    flat = ids.reshape(-1).tolist()
    distinct = sorted(set(flat))
    where = {t: i for i, t in enumerate(distinct)}
    index = np.array([where[t] for t in flat], dtype="<u2")
    return label(distinct), index.tobytes()


def level_colours(name: str) -> bytes:
    """Return one RGB colour per probability step (48 bytes): the map at each step's middle."""
    table = np.frombuffer(colors.lut(name), dtype=np.uint8).reshape(256, 3)
    rows = np.round((np.arange(LEVELS) + 0.5) / LEVELS * 255).astype(int)
    return bytes(table[rows].tobytes())


def wire_bytes(state: dict[str, Any]) -> int:
    """Return the bytes ``state`` costs on the comm: its binary buffers plus the rest as JSON
    (UTF-8, as jupyter_client packs messages)."""
    from ipywidgets.widgets.widget import _remove_buffers

    rest, _, buffers = _remove_buffers(state)
    text = json.dumps(rest, ensure_ascii=False)
    return len(text.encode("utf-8")) + sum(len(memoryview(b).cast("B")) for b in buffers)


class LensView(FallbackWidget):
    """An interactive grid of a :class:`~interp_magics.lens.LensResult`, one example at a time.

    ``view.example`` is the example on show; ``view.selected`` is the ``[layer row, column]``
    last clicked (its column's answer trajectory is drawn; empty: the example's last real
    token).
    """

    _bundle = "lens"

    meta = traitlets.Dict().tag(sync=True)
    example = traitlets.Int(0).tag(sync=True)
    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)  # input token per column
    pad = traitlets.Bytes().tag(sync=True)  # one byte per column (1 = padding), empty: none
    codes = traitlets.Bytes().tag(sync=True)  # 4-bit top-1 probability codes, row-major
    top1 = traitlets.Bytes().tag(sync=True)  # uint16 index into top1_vocab per cell, or empty
    top1_vocab = traitlets.List(traitlets.Unicode()).tag(sync=True)
    lut = traitlets.Bytes().tag(sync=True)  # LEVELS x RGB for light backgrounds
    lut_dark = traitlets.Bytes().tag(sync=True)  # LEVELS x RGB for dark backgrounds
    answer = traitlets.Unicode("").tag(sync=True)  # the example's answer token, or ""
    trajectory = traitlets.Bytes().tag(sync=True)  # float32 [answer prob x rows, rank x rows]
    trajectory_col = traitlets.Int(0).tag(sync=True)  # the column the trajectory is of
    selected = traitlets.List(traitlets.Int()).tag(sync=True)

    def __init__(
        self,
        result: LensResult,
        *,
        example: int = 0,
        colormap: str = COLORMAP,
        colormap_dark: str = COLORMAP_DARK,
        text_columns: int = TEXT_COLUMNS,
    ) -> None:
        """Show ``result``'s ``example``; top-1 tokens are written in cells when the grid has at
        most ``text_columns`` positions (and its cells are wide enough). ``colormap`` colours
        light themes, ``colormap_dark`` dark ones (the PNG fallback is the result's own)."""
        self.result = result
        n_layer, n_ex, n_pos, _ = result.top_ids.shape
        _check_index("example", example, n_ex)
        self._ready = False
        self._text = n_pos <= text_columns
        positions = list(result.positions)
        contiguous = positions == list(range(positions[0], positions[0] + n_pos))
        meta = {
            "title": f"{result.method} of {result.model}",
            "method": result.method,
            "model": result.model,
            "layer_labels": list(result.layer_labels),
            "rows": n_layer,
            "cols": n_pos,
            "examples": n_ex,
            "k": result.k,
            "levels": LEVELS,
            "text": self._text,
            "has_answer": result.answer is not None,
            # contiguous positions (the usual case) cost one number, not a list
            "position_start": positions[0] if contiguous else None,
            "positions": None if contiguous else positions,
            "notes": list(result.notes),
        }
        super().__init__(
            meta=meta,
            lut=level_colours(colormap),
            lut_dark=level_colours(colormap_dark),
            example=example,
            **self._example_state(example, None),
        )
        self._ready = True
        self.on_msg(self._on_message)

    # -- what the browser receives ------------------------------------------------------------
    def _example_state(self, ex: int, col: int | None) -> dict[str, Any]:
        """Return the traits of example ``ex`` (trajectory at ``col``, default its last token)."""
        r = self.result
        pad = ~r.attention_mask[ex, list(r.positions)].bool()
        state: dict[str, Any] = {
            "tokens": r.input_tokens(ex),
            "pad": pad.to(torch.uint8).numpy().tobytes() if bool(pad.any()) else b"",
            "codes": prob_codes(r.top_probs[:, ex, :, 0]),
            "top1": b"",
            "top1_vocab": [],
            "answer": "",
        }
        if self._text:
            vocab, index = top1_table(self._labels, r.top_ids[:, ex, :, 0])
            state.update(top1=index, top1_vocab=vocab)
        if r.answer is not None:
            state["answer"] = self._labels([int(r.answer[ex])])[0]
        state.update(self._trajectory_state(ex, col))
        return state

    def _labels(self, ids: list[int]) -> list[str]:
        from ..lens.inputs import token_labels

        return token_labels(self.result.tokenizer, ids)

    def _trajectory_state(self, ex: int, col: int | None) -> dict[str, Any]:
        r = self.result
        if col is None:
            col = self._last_column(ex)
        data = b""
        if r.answer_logprob is not None and r.answer_rank is not None:
            rows = torch.cat(
                [r.answer_logprob[:, ex, col].exp(), r.answer_rank[:, ex, col].float()]
            )
            data = rows.numpy().astype("<f4").tobytes()
        return {"trajectory": data, "trajectory_col": col}

    def _last_column(self, ex: int) -> int:
        """Return the column of ``ex``'s last real token (the last column if none is real)."""
        from ..lens.inputs import LensError

        try:
            return self.result.last_position(ex)
        except LensError:
            return len(self.result.positions) - 1

    def payload_bytes(self) -> dict[str, float]:
        """Return what the first view of the example on show costs on the comm, in bytes.

        ``data``: every synced trait but the ES module and stylesheet (the code, the same for
        every lens); ``cells``: the grid's cells; ``per_cell``: their ratio.
        """
        state = self.get_state()
        data = wire_bytes({k: v for k, v in state.items() if k not in ("_esm", "_css")})
        cells = int(self.meta["rows"]) * int(self.meta["cols"])
        return {"data": data, "cells": cells, "per_cell": data / cells}

    def column(self, example: int, col: int) -> dict[str, Any]:
        """Return the top-k tokens and probabilities of every layer at one column (and the
        answer's rank and probability there): what a hover asks the kernel for."""
        r = self.result
        _check_index("example", example, r.top_ids.shape[1])
        _check_index("column", col, r.top_ids.shape[2])
        ids = r.top_ids[:, example, col, :]
        distinct = sorted(set(ids.reshape(-1).tolist()))
        text = dict(zip(distinct, self._labels(distinct), strict=True))
        out: dict[str, Any] = {
            "example": example,
            "col": col,
            "tokens": [[text[t] for t in row] for row in ids.tolist()],
            "probs": r.top_probs[:, example, col, :].tolist(),
        }
        if r.answer_logprob is not None and r.answer_rank is not None:
            out["answer_prob"] = r.answer_logprob[:, example, col].exp().tolist()
            out["answer_rank"] = r.answer_rank[:, example, col].tolist()
        return out

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "column":
            return
        reply: dict[str, Any] = {"type": "column", "id": content.get("id")}
        try:
            reply.update(self.column(int(content["example"]), int(content["col"])))
        except (KeyError, TypeError, ValueError) as exc:
            reply["error"] = str(exc)
        self.send(reply)

    def _update(self, state: dict[str, Any]) -> None:
        """Send ``state`` to the browser as one update."""
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)

    # -- reacting to the browser (and to Python) ----------------------------------------------
    @traitlets.validate("example")
    def _valid_example(self, proposal: Any) -> int:
        _check_index("example", proposal["value"], self.result.top_ids.shape[1])
        return int(proposal["value"])

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Any) -> list[int]:
        value = [int(v) for v in proposal["value"]]
        if value:
            rows, cols = int(self.meta["rows"]), int(self.meta["cols"])
            if len(value) != 2 or not (0 <= value[0] < rows and 0 <= value[1] < cols):
                raise traitlets.TraitError(
                    f"selected must be [layer row, column] inside {rows} x {cols}, got {value}"
                )
        return value

    @traitlets.observe("example")
    def _on_example(self, change: Any) -> None:
        if self._ready:
            self._update({**self._example_state(self.example, None), "selected": []})

    @traitlets.observe("selected")
    def _on_selected(self, change: Any) -> None:
        if self._ready:
            col = self.selected[1] if self.selected else None
            self._update(self._trajectory_state(self.example, col))

    # -- static fallbacks ---------------------------------------------------------------------
    def fallback_text(self) -> str:
        return self.result.describe()

    def fallback_png(self) -> bytes:
        if self.example == 0:
            return self.result._repr_png_()
        from ..lens.plots import png

        return png(self.result.figure(self.example))

    def fallback_html(self, png: bytes | None = None) -> str:
        """Return the PNG and the text, then a table: by layer, at the trajectory's position,
        the top-1 token and probability (and the answer's rank and probability)."""
        base = super().fallback_html(png)
        r = self.result
        frame = r.trajectory(self.example, r.positions[self.trajectory_col])
        columns = ["layer_label", "top_token", "top_prob"] + [
            c for c in ("answer_rank", "answer_prob") if c in frame.columns
        ]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(row[c]))}</td>" for c in columns) + "</tr>"
            for _, row in frame.iterrows()
        )
        where = (
            f"example {self.example}, position {frame.attrs['position']} "
            f"({r.input_tokens(self.example)[self.trajectory_col]!r})"
        )
        table = (
            f"<table><caption>{html.escape(where)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
        return base.replace("</div>", table + "</div>", 1)


def _check_index(name: str, value: Any, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in 0..{limit - 1}, got {value!r}")
    if not 0 <= int(value) < limit:
        raise ValueError(f"{name} {value} is out of range: choose 0..{limit - 1}")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
