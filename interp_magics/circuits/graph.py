"""The computational graph of a decoder: who writes the residual stream, who reads it, and edges.

A pre-norm decoder's residual stream at any point is a sum of what earlier components wrote
into it. The **senders** are those writers:

- ``embed``: the block-0 input (token embeddings, plus learned position embeddings for GPT-2);
- every attention head ``L{l}H{h}``: its ``head_out`` slice (the per-head ``z``) times its rows
  of the attention output projection;
- every MLP ``MLP{l}``: the MLP module's output.

The attention output projection's bias (GPT-2, GPT-NeoX) does not depend on the input, so it
never differs between two runs: it is no node, every receiver always reads it, and no edge
carries it (ablating it by its mean or another example's value would change nothing).

The **receivers** read the residual stream, each through its own norm:

- ``L{l}H{h}.q``: query head ``h``'s input (its columns of the query projection);
- ``L{l}H{h}.k`` / ``.v``: key and value inputs. With grouped-query attention (fewer key/value
  heads than query heads) a key or value is computed once per *key/value head* and shared by
  its group of query heads, so those receivers are ``L{l}KV{j}.k`` / ``.v``, one per key/value
  head ``j`` (query heads ``j*g .. j*g+g-1`` read it, ``g = n_heads / n_kv_heads``);
- ``MLP{l}``: the MLP's input;
- ``logits``: the final norm's input.

An **edge** ``sender -> receiver`` exists when the sender writes before the receiver reads:
embeddings feed everything; a layer-``l`` head or MLP feeds every receiver of later layers and
the logits; a layer-``l`` head also feeds ``MLP{l}`` in sequential blocks (GPT-2, Llama,
GPT-NeoX with ``use_parallel_residual=False``), but not in parallel blocks, where the MLP reads
the block's input.

Models whose MLPs contribute nothing (the toy model's ``NoMLP``) keep their MLP nodes: their
outputs never change, so every edge from them scores and patches to exactly 0.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..core.anatomy import Anatomy, anatomy
from ..core.errors import CaptureError


class CircuitError(CaptureError):
    """Inputs a circuit analysis cannot use (an unknown node, edge or family); says what to fix."""


SenderKind = Literal["embed", "head", "mlp"]
ReceiverKind = Literal["q", "k", "v", "mlp", "logits"]


@dataclass(frozen=True)
class Sender:
    """A node writing the residual stream; ``layer`` is -1 for the embeddings."""

    name: str
    kind: SenderKind
    layer: int
    head: int | None = None


@dataclass(frozen=True)
class Receiver:
    """A node reading the residual stream; ``layer`` is ``n_layers`` for the logits.

    ``head`` is the query head of a ``q`` receiver and the key/value head of ``k``/``v``.
    """

    name: str
    kind: ReceiverKind
    layer: int
    head: int | None = None


@dataclass(frozen=True)
class Graph:
    """The senders, receivers and edges of one model (see the module docstring)."""

    anatomy: Anatomy
    senders: tuple[Sender, ...]
    receivers: tuple[Receiver, ...]
    edges: torch.Tensor  # [senders, receivers] bool: the sender writes before the receiver reads

    @property
    def n_edges(self) -> int:
        """Return how many edges the graph has."""
        return int(self.edges.sum())

    @property
    def grouped(self) -> bool:
        """Whether keys and values have their own (fewer) heads: grouped-query attention."""
        return self.anatomy.n_kv_heads != self.anatomy.n_heads

    def sender_index(self, name: str) -> int:
        """Return the index of the sender called ``name``."""
        for i, s in enumerate(self.senders):
            if s.name == name:
                return i
        raise CircuitError(self._unknown(name, "sender", [s.name for s in self.senders]))

    def receiver_index(self, name: str) -> int:
        """Return the index of the receiver called ``name``."""
        for i, r in enumerate(self.receivers):
            if r.name == name:
                return i
        raise CircuitError(self._unknown(name, "receiver", [r.name for r in self.receivers]))

    def edge_list(self) -> list[tuple[str, str]]:
        """Return every edge as ``(sender name, receiver name)``, senders first."""
        return [
            (self.senders[i].name, self.receivers[j].name) for i, j in self.edges.nonzero().tolist()
        ]

    def edge_mask(self, edges: Iterable[tuple[str, str]]) -> torch.Tensor:
        """Return ``[senders, receivers]`` marking ``edges`` (each must be an edge of the graph)."""
        mask = torch.zeros_like(self.edges)
        for sender, receiver in edges:
            i, j = self.sender_index(sender), self.receiver_index(receiver)
            if not bool(self.edges[i, j]):
                raise CircuitError(
                    f"{sender} -> {receiver} is not an edge: {sender} writes the residual stream "
                    f"after {receiver} reads it"
                )
            mask[i, j] = True
        return mask

    def select_senders(self, specs: Sequence[str] | str | None) -> list[int]:
        """Return sender indices for names or glob patterns (``"L0H*"``); None: all senders."""
        if specs is None:
            return list(range(len(self.senders)))
        names = [s.name for s in self.senders]
        out: list[int] = []
        for spec in [specs] if isinstance(specs, str) else list(specs):
            hits = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, str(spec))]
            if not hits:
                raise CircuitError(self._unknown(str(spec), "sender", names))
            out += [i for i in hits if i not in out]
        return out

    def select_receivers(
        self, specs: Sequence[str | Sequence[str]] | str | None
    ) -> list[tuple[str, list[int]]]:
        """Return receiver groups ``(label, indices)`` for ``specs``.

        Each item is one group: a receiver name (``"L1H0.k"``, ``"MLP2"``, ``"logits"``), a glob
        (``"L1H*.k"``: every match, together; ``"*"``: every receiver), a head name or glob
        (``"L1H0"``, ``"L1H*"``: the heads' query, key and value inputs; with grouped-query
        attention the key and value of their key/value heads, which sibling query heads read
        too), or a list of those. None: every head (query, key and
        value together), every MLP, and the logits.
        """
        if specs is None:
            a = self.anatomy
            specs = [
                name
                for layer in range(a.n_layers)
                for name in [*(f"L{layer}H{h}" for h in range(a.n_heads)), f"MLP{layer}"]
            ] + ["logits"]
        items = [specs] if isinstance(specs, str) else list(specs)
        groups = []
        for item in items:
            parts = [item] if isinstance(item, str) else list(item)
            idx: list[int] = []
            for part in parts:
                idx += [i for i in self._match_receivers(str(part)) if i not in idx]
            label = item if isinstance(item, str) else "+".join(str(p) for p in parts)
            groups.append((label, sorted(idx)))
        return groups

    def _match_receivers(self, spec: str) -> list[int]:
        names = [r.name for r in self.receivers]
        # A spec names receivers, heads (their query, key and value inputs), or both: "L1H*"
        # is every layer-1 head's inputs, also the key/value heads' with grouped-query attention.
        hits = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, spec)]
        hits += [i for i in self._head_inputs(spec) if i not in hits]
        if hits:
            return sorted(hits)
        if self.grouped and spec.endswith((".k", ".v")) and "H" in spec:
            layer, _, rest = spec[1:].partition("H")
            head_s, _, kind = rest.partition(".")
            if layer.isdigit() and head_s.isdigit():
                j = int(head_s) // (self.anatomy.n_heads // self.anatomy.n_kv_heads)
                raise CircuitError(
                    f"{spec}: with grouped-query attention keys and values belong to key/value "
                    f"heads; query head {head_s} reads L{layer}KV{j}.{kind}"
                )
        raise CircuitError(self._unknown(spec, "receiver", names))

    def _head_inputs(self, spec: str) -> list[int]:
        """Return the query, key and value receivers of the query head(s) ``spec`` names."""
        a = self.anatomy
        group = a.n_heads // a.n_kv_heads
        index = self._index
        out: list[int] = []
        for layer in range(a.n_layers):
            for h in range(a.n_heads):
                if not fnmatch.fnmatchcase(f"L{layer}H{h}", spec):
                    continue
                for kind, head in (("q", h), ("k", h // group), ("v", h // group)):
                    j = index[(kind, layer, head)]
                    if j not in out:
                        out.append(j)
        return out

    @property
    def _index(self) -> dict[tuple[str, int, int | None], int]:
        return {(r.kind, r.layer, r.head): i for i, r in enumerate(self.receivers)}

    def _unknown(self, name: str, what: str, names: list[str]) -> str:
        close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        example = ", ".join([*names[:3], "...", names[-1]]) if len(names) > 4 else ", ".join(names)
        return f"no {what} called {name!r} in this model ({example}){hint}"


def receiver_name(kind: ReceiverKind, layer: int, head: int | None, grouped: bool) -> str:
    """Return the name of a receiver (see the module docstring)."""
    if kind == "logits":
        return "logits"
    if kind == "mlp":
        return f"MLP{layer}"
    letter = "KV" if grouped and kind in ("k", "v") else "H"
    return f"L{layer}{letter}{head}.{kind}"


def graph_of(model: nn.Module) -> Graph:
    """Return the computational graph of ``model`` (GPT-2, GPT-NeoX/Pythia, Llama-family).

    Raises:
        CircuitError: for another family, a model without an MLP norm, or without a readout.
    """
    try:
        a = anatomy(model)
    except CaptureError as e:
        raise CircuitError(str(e)) from None
    if a.unembed is None:
        raise CircuitError(
            f"{type(model).__name__} has no language-model head: circuits end at the logits; "
            "load it with its head (AutoModelForCausalLM)"
        )
    if a.mlp_norm is None:
        raise CircuitError(
            f"{type(model).__name__}'s blocks have no MLP norm where the {a.family} family keeps "
            "it; circuits cannot give the MLP an input of its own"
        )
    if a.n_heads % a.n_kv_heads:
        raise CircuitError(f"{a.n_heads} query heads do not split into {a.n_kv_heads} groups")
    grouped = a.n_kv_heads != a.n_heads
    senders = [Sender("embed", "embed", -1)]
    receivers: list[Receiver] = []
    for layer in range(a.n_layers):
        senders += [Sender(f"L{layer}H{h}", "head", layer, h) for h in range(a.n_heads)]
        senders.append(Sender(f"MLP{layer}", "mlp", layer))
        for kind, count in (("q", a.n_heads), ("k", a.n_kv_heads), ("v", a.n_kv_heads)):
            for h in range(count):
                k: ReceiverKind = kind  # type: ignore[assignment]
                receivers.append(Receiver(receiver_name(k, layer, h, grouped), k, layer, h))
        receivers.append(Receiver(f"MLP{layer}", "mlp", layer))
    receivers.append(Receiver("logits", "logits", a.n_layers))
    edges = torch.tensor(
        [[_writes_before(s, r, a.parallel) for r in receivers] for s in senders], dtype=torch.bool
    )
    return Graph(a, tuple(senders), tuple(receivers), edges)


def _writes_before(sender: Sender, receiver: Receiver, parallel: bool) -> bool:
    if sender.layer < receiver.layer:
        return True
    # Same layer: only a sequential block's MLP reads what its attention heads wrote.
    return (
        sender.layer == receiver.layer
        and sender.kind == "head"
        and receiver.kind == "mlp"
        and not parallel
    )
