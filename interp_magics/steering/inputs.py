"""Prompts for steering: texts, token ids or tokenizer outputs as one padded, masked batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..intervene.errors import InterventionError


class SteeringError(InterventionError):
    """Inputs steering cannot use; the message says what to fix."""


@dataclass(frozen=True)
class Prompts:
    """A batch of prompts: ids ``[n, T]``, attention mask ``[n, T]`` (1 = real) and a label per
    prompt (its text, or ``prompt i``)."""

    ids: torch.Tensor
    mask: torch.Tensor
    labels: list[str]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def padded(self) -> bool:
        """Whether any prompt has padding."""
        return not bool(self.mask.bool().all())

    def batch(self, start: int = 0, stop: int | None = None) -> dict[str, torch.Tensor]:
        """Return prompts ``start:stop`` as model keyword arguments.

        Padded batches also get ``position_ids`` counted over real tokens, so a left-padded
        prompt is computed as it would be alone (as ``generate`` does).
        """
        ids, mask = self.ids[start:stop], self.mask[start:stop]
        out = {"input_ids": ids, "attention_mask": mask}
        if not bool(mask.bool().all()):
            out["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return out


def as_prompts(prompts: Any, tokenizer: Any, name: str, *, padding: str = "right") -> Prompts:
    """Return ``prompts`` (texts, token ids ``[n, T]``, lists of ids, or a tokenizer's output)
    as a :class:`Prompts` batch, padded on ``padding``'s side."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if isinstance(prompts, torch.Tensor):
        ids = prompts if prompts.ndim == 2 else prompts.reshape(1, -1)
        _check_ids(ids, name)
        labels = [f"prompt {i}" for i in range(ids.shape[0])]
        return Prompts(ids.long(), torch.ones_like(ids, dtype=torch.long), labels)
    if isinstance(prompts, Mapping):
        if "input_ids" not in prompts:
            raise SteeringError(f"{name} has no input_ids (keys: {sorted(prompts)})")
        ids = torch.as_tensor(prompts["input_ids"])
        ids = ids if ids.ndim == 2 else ids.reshape(1, -1)
        _check_ids(ids, name)
        mask = prompts.get("attention_mask")
        mask_t = torch.ones_like(ids) if mask is None else torch.as_tensor(mask).reshape(ids.shape)
        labels = [f"prompt {i}" for i in range(ids.shape[0])]
        return Prompts(ids.long(), mask_t.long(), labels)
    if isinstance(prompts, Sequence) and prompts:
        if all(isinstance(p, str) for p in prompts):
            if tokenizer is None:
                raise SteeringError(
                    f"{name} are texts: pass tokenizer= (or give token ids), or use a model "
                    "that carries one as model.tokenizer"
                )
            rows = [_encode(tokenizer, p) for p in prompts]
            return _pad(rows, list(prompts), _pad_id(tokenizer), padding, name)
        if all(isinstance(p, (Sequence, torch.Tensor)) for p in prompts):
            rows = [torch.as_tensor(p).reshape(-1) for p in prompts]
            for row in rows:
                _check_ids(row, name)
            labels = [f"prompt {i}" for i in range(len(rows))]
            return _pad(rows, labels, _pad_id(tokenizer), padding, name)
    raise SteeringError(
        f"{name} must be texts (with a tokenizer), token ids [n, T], lists of token ids or a "
        f"tokenizer's output, not {type(prompts).__name__}"
    )


def _check_ids(ids: torch.Tensor, name: str) -> None:
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.numel() == 0:
        raise SteeringError(f"{name} must hold token ids (integers), got {ids.dtype}")


def _encode(tokenizer: Any, text: str) -> torch.Tensor:
    encoded = tokenizer(text)
    ids = encoded["input_ids"] if isinstance(encoded, Mapping) else encoded
    row = torch.as_tensor(ids).reshape(-1)
    if row.numel() == 0:
        raise SteeringError(f"the tokenizer gave no tokens for {text!r}")
    return row.long()


def _pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return 0


def _pad(rows: list[torch.Tensor], labels: list[str], pad: int, padding: str, name: str) -> Prompts:
    if padding not in ("left", "right"):
        raise SteeringError(f"padding must be 'left' or 'right', not {padding!r}")
    length = max(int(r.numel()) for r in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        n = int(row.numel())
        where = slice(length - n, length) if padding == "left" else slice(0, n)
        ids[i, where] = row
        mask[i, where] = 1
    return Prompts(ids, mask, labels)


def real_positions(mask: torch.Tensor, position: int, name: str) -> torch.Tensor:
    """Return, per prompt, the column of its ``position``-th real token (negative: counted back
    from its last real token), whichever side it is padded on."""
    out = []
    for i, row in enumerate(mask.bool()):
        real = row.nonzero().flatten()
        if not -len(real) <= position < len(real):
            raise SteeringError(
                f"{name} {i} has {len(real)} real tokens; position {position} is outside them"
            )
        out.append(int(real[position]))
    return torch.tensor(out, dtype=torch.long)
