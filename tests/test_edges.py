"""The circuit graph and its engine against a plain-hook reference, one forward per intervention.

:class:`Plain` is written from the HuggingFace modelling code, not from interp_magics: it
records what every sender writes (the block-0 input, each head's ``z`` slice times its rows of
the output projection, each MLP's output), rebuilds a receiver's input as the sum of its
upstream senders' outputs (actual, or replaced) plus the attention output biases, and computes
the receiver from that input the way the model does: the projection's full output, split into
heads exactly as the attention module splits it (GPT-2 ``split``, NeoX ``view``+``chunk``,
Llama ``view``). One intervention, one forward. The other circuit tests import it from here.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interp_magics import circuits, owned_hooks, testing, toy
from interp_magics.circuits.runs import prepare, reference
from interp_magics.patching import MetricError, PatchingError, logit_diff

FAMILY = {"GPT2LMHeadModel": "gpt2", "GPTNeoXForCausalLM": "neox", "LlamaForCausalLM": "llama"}
ANSWER, WRONG = 5, 6
pytestmark = pytest.mark.filterwarnings("ignore:the clean-corrupted gap")


def build(name: str, dtype: torch.dtype = torch.float32):
    """A random-weight model whose query/key/value weights are scaled up 8x: at initialisation
    attention is almost uniform, so queries and keys barely matter; sharpened, their effects
    are far above the tolerances the tests check."""
    make = {
        "gpt2": lambda: testing.gpt2(vocab_size=97),
        "llama": testing.llama,
        "neox": testing.neox,
    }
    model = make[name]().to(dtype)
    plain = Plain(model)
    with torch.no_grad():
        for layer in range(plain.n_layers):
            for module in plain.projections(layer).values():
                module.weight.mul_(8.0)
    return model


def pair(b: int = 4, t: int = 8, at: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean ids and corrupted ids that differ from position ``at`` on."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, 97, (b, t), generator=g)
    corrupt = clean.clone()
    corrupt[:, at:] = torch.randint(1, 97, (b, t - at), generator=g)
    return clean, corrupt


def metric_of(logits: torch.Tensor) -> torch.Tensor:
    """The tests' metric, computed from full logits: logit difference at the last position."""
    return logits[:, -1, ANSWER] - logits[:, -1, WRONG]


class Plain:
    """A reference forward in which chosen receivers read chosen senders' replaced outputs."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.family = FAMILY[type(model).__name__]
        cfg = model.config
        self.n_layers = cfg.num_hidden_layers
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.d = cfg.hidden_size
        self.dh = self.d // self.n_heads
        self.parallel = bool(getattr(cfg, "use_parallel_residual", False))
        base = {"gpt2": "transformer", "neox": "gpt_neox", "llama": "model"}[self.family]
        root = getattr(model, base)
        self.blocks = root.h if self.family == "gpt2" else root.layers
        self.final = {"gpt2": "ln_f", "neox": "final_layer_norm", "llama": "norm"}[self.family]
        self.final = getattr(root, self.final)

    # -- the model's parts, as its modelling code names them ---------------------------
    def attn_norm(self, layer: int) -> nn.Module:
        b = self.blocks[layer]
        return b.ln_1 if self.family == "gpt2" else b.input_layernorm

    def mlp_norm(self, layer: int) -> nn.Module:
        b = self.blocks[layer]
        return b.ln_2 if self.family == "gpt2" else b.post_attention_layernorm

    def out_proj(self, layer: int) -> nn.Module:
        b = self.blocks[layer]
        if self.family == "gpt2":
            return b.attn.c_proj
        return b.attention.dense if self.family == "neox" else b.self_attn.o_proj

    def projections(self, layer: int) -> dict[str, nn.Module]:
        b = self.blocks[layer]
        if self.family == "gpt2":
            return {"qkv": b.attn.c_attn}
        if self.family == "neox":
            return {"qkv": b.attention.query_key_value}
        return {"q": b.self_attn.q_proj, "k": b.self_attn.k_proj, "v": b.self_attn.v_proj}

    def split(self, which: str, out: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return views ``[N, T, heads, d_head]`` of q, k, v inside a projection's output."""
        n, t = out.shape[:2]
        if self.family == "gpt2":  # GPT2Attention: c_attn(x).split(split_size, dim=2)
            q, k, v = out.split(self.d, dim=2)
            return {
                "q": q.view(n, t, -1, self.dh),
                "k": k.view(n, t, -1, self.dh),
                "v": v.view(n, t, -1, self.dh),
            }
        if self.family == "neox":  # view(*shape, -1, 3 * head_size), chunk(3, dim=-1)
            q, k, v = out.view(n, t, -1, 3 * self.dh).chunk(3, dim=-1)
            return {"q": q, "k": k, "v": v}
        return {which: out.view(n, t, -1, self.dh)}

    def head_write(self, layer: int, z: torch.Tensor, h: int) -> torch.Tensor:
        sl = slice(h * self.dh, (h + 1) * self.dh)
        proj = self.out_proj(layer)
        w = proj.weight[sl] if self.family == "gpt2" else proj.weight[:, sl].T  # Conv1D: x W
        return z[..., sl] @ w

    def bias(self, layer: int) -> torch.Tensor:
        b = self.out_proj(layer).bias
        return torch.zeros(self.d, dtype=self.out_proj(layer).weight.dtype) if b is None else b

    # -- graph ------------------------------------------------------------------------
    def senders(self) -> list[str]:
        out = ["embed"]
        for layer in range(self.n_layers):
            out += [f"L{layer}H{h}" for h in range(self.n_heads)] + [f"MLP{layer}"]
        return out

    def upstream(self, sender: str, receiver: tuple) -> bool:
        kind, layer = receiver[0], receiver[1]
        if sender == "embed":
            return True
        if sender.startswith("MLP"):
            return int(sender[3:]) < layer
        at = int(sender[1:].split("H")[0])
        return at < layer or (at == layer and kind == "mlp" and not self.parallel)

    def bias_before(self, receiver: tuple) -> torch.Tensor:
        kind, layer = receiver[0], receiver[1]
        last = layer if (kind == "mlp" and not self.parallel) else layer - 1
        total = torch.zeros(self.d, dtype=self.bias(0).dtype)
        for at in range(last + 1):
            total = total + self.bias(at).detach()
        return total

    def input_of(self, receiver: tuple, replace: dict, cur: dict) -> torch.Tensor:
        new = replace.get(receiver, {})
        total = self.bias_before(receiver)
        for u in self.senders():
            if self.upstream(u, receiver):
                total = total + new.get(u, cur[u])
        return total

    # -- one forward ------------------------------------------------------------------
    def run(self, ids=None, replace=None, inputs_embeds=None):
        """Return ``(logits, senders)``: receiver ``(kind, layer, head)`` in ``replace`` reads
        the sum of its upstream senders, ``replace[receiver][sender]`` where given."""
        replace = replace or {}
        cur: dict[str, torch.Tensor] = {}
        handles = []

        def block0(mod, args, kwargs):
            cur["embed"] = args[0] if args else kwargs["hidden_states"]

        handles.append(self.blocks[0].register_forward_pre_hook(block0, with_kwargs=True))
        for layer in range(self.n_layers):

            def heads(mod, args, layer=layer):
                for h in range(self.n_heads):
                    cur[f"L{layer}H{h}"] = self.head_write(layer, args[0], h)

            def mlp_out(mod, args, out, layer=layer):
                cur[f"MLP{layer}"] = out

            handles.append(self.out_proj(layer).register_forward_pre_hook(heads))
            handles.append(self.blocks[layer].mlp.register_forward_hook(mlp_out))
            for which, module in self.projections(layer).items():
                mine = [
                    r for r in replace if r[0] in "qkv" and r[1] == layer and which in ("qkv", r[0])
                ]
                if mine:
                    handles.append(
                        module.register_forward_hook(self._qkv(layer, which, mine, replace, cur))
                    )
            if ("mlp", layer, None) in replace:

                def mlp_in(mod, args, layer=layer):
                    x = self.input_of(("mlp", layer, None), replace, cur)
                    return (self.mlp_norm(layer).forward(x),)

                handles.append(self.blocks[layer].mlp.register_forward_pre_hook(mlp_in))
        if ("logits", self.n_layers, None) in replace:

            def final(mod, args):
                return (self.input_of(("logits", self.n_layers, None), replace, cur),)

            handles.append(self.final.register_forward_pre_hook(final))
        try:
            if inputs_embeds is not None:
                logits = self.model(inputs_embeds=inputs_embeds).logits
            else:
                logits = self.model(ids).logits
        finally:
            for h in handles:
                h.remove()
        return logits, cur

    def _qkv(self, layer, which, mine, replace, cur):
        def hook(module, args, out):
            for receiver in mine:
                kind, _, head = receiver
                x = self.input_of(receiver, replace, cur)
                full = module.forward(self.attn_norm(layer).forward(x))
                # the head's entries, marked through the model's own split (no autograd on it)
                where = torch.zeros(out.shape, dtype=torch.bool)
                self.split(which, where)[kind][:, :, head] = True
                out = torch.where(where, full, out)
            return out

        return hook


def receiver_key(graph, name: str) -> tuple:
    r = graph.receivers[graph.receiver_index(name)]
    return (r.kind, r.layer, r.head)


# -- the graph ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpt2", "llama", "neox"])
def test_graph_has_every_node_and_exactly_the_edges_that_write_before_they_read(name):
    model = build(name)
    plain = Plain(model)
    graph = circuits.graph_of(model)
    L, H, KV = plain.n_layers, plain.n_heads, plain.n_kv
    assert [s.name for s in graph.senders] == plain.senders()
    assert len(graph.receivers) == L * (H + 2 * KV + 1) + 1
    kv = "KV" if KV != H else "H"
    assert f"L1{kv}{KV - 1}.k" in [r.name for r in graph.receivers]
    expected = torch.tensor(
        [[plain.upstream(s, (r.kind, r.layer)) for r in graph.receivers] for s in plain.senders()]
    )
    assert torch.equal(graph.edges, expected)
    same_layer_mlp = bool(graph.edges[graph.sender_index("L0H0"), graph.receiver_index("MLP0")])
    assert same_layer_mlp == (name != "neox")  # NeoX blocks are parallel: the MLP reads the input
    assert graph.n_edges == int(expected.sum()) == len(graph.edge_list())


def test_grouped_query_receivers_are_key_value_heads():
    graph = circuits.graph_of(testing.llama())  # 4 query heads, 2 key/value heads
    names = [r.name for r in graph.receivers]
    assert names[:9] == [
        "L0H0.q", "L0H1.q", "L0H2.q", "L0H3.q", "L0KV0.k", "L0KV1.k", "L0KV0.v", "L0KV1.v", "MLP0"
    ]  # fmt: skip
    ((label, idx),) = graph.select_receivers(["L1H3"])
    assert label == "L1H3" and [names[i] for i in idx] == ["L1H3.q", "L1KV1.k", "L1KV1.v"]
    ((_, layer1),) = graph.select_receivers(["L1H*"])
    assert [names[i] for i in layer1] == [n for n in names if n.startswith(("L1H", "L1KV"))]
    ((_, every),) = graph.select_receivers("*")
    assert every == list(range(len(names)))
    with pytest.raises(circuits.CircuitError, match=r"L1KV1\.k"):
        graph.select_receivers(["L1H3.k"])


def test_toy_graph_keeps_its_mlp_nodes_whose_outputs_are_zero():
    model = toy.load()
    graph = circuits.graph_of(model)
    ids = toy.repeated_sequences(2)
    setup = prepare(model, ids, ids.flip(0), logit_diff(1, 2), progress=False)
    run = reference(setup, setup.clean)
    mlps = [i for i, s in enumerate(graph.senders) if s.kind == "mlp"]
    assert len(mlps) == 2 and float(run.senders[mlps].abs().max()) == 0.0


@pytest.mark.parametrize("name", ["gpt2", "llama", "neox"])
def test_senders_sum_to_the_residual_stream(name):
    model = build(name)
    plain = Plain(model)
    clean, corrupt = pair()
    setup = prepare(model, clean, corrupt, logit_diff(ANSWER, WRONG), progress=False)
    run = reference(setup, setup.clean)
    with torch.no_grad():
        hidden = model(clean, output_hidden_states=True).hidden_states
        _, cur = plain.run(clean)
    for i, sender in enumerate(plain.senders()):
        assert torch.allclose(run.senders[i], cur[sender], atol=1e-6), sender
    for layer in range(plain.n_layers):  # hidden_states[l] is block l's input
        upstream = [i for i, s in enumerate(plain.senders()) if plain.upstream(s, ("q", layer))]
        rebuilt = run.senders[upstream].sum(0) + plain.bias_before(("q", layer))
        assert (rebuilt - hidden[layer]).abs().max() < 1e-5
        assert torch.allclose(run.resid[layer], hidden[layer], atol=1e-6)


# -- the engine against the plain reference -------------------------------------------------

CASES = {
    # sender -> receiver sets: single q, k, v, MLP and logits receivers and a set of several
    "gpt2": (
        "L0H1",
        ["L1H2.q", "L2H0.k", "L1H3.v", "MLP1", "MLP0", "logits", ["L1H0.q", "L2H1.v", "MLP2"]],
    ),
    "llama": (
        "L0H2",
        ["L1H3.q", "L1KV1.k", "L2KV0.v", "MLP1", "MLP0", "logits", ["L2H1.q", "L1KV0.v"]],
    ),
    "neox": ("L0H3", ["L1H0.q", "L2H3.k", "L1H1.v", "MLP1", "MLP0", "logits", ["L1H2.k", "MLP2"]]),
}


@pytest.mark.parametrize("name", ["gpt2", "llama", "neox"])
def test_path_patching_cells_match_one_plain_forward_each(name):
    model = build(name)
    plain = Plain(model)
    graph = circuits.graph_of(model)
    clean, corrupt = pair()
    sender, sets = CASES[name]
    result = circuits.path_patch(
        model,
        clean,
        corrupt,
        logit_diff(ANSWER, WRONG),
        senders=[sender, "MLP0"],
        receivers=sets,
        progress=False,
    )
    with torch.no_grad():
        logits, _ = plain.run(clean)
        _, source = plain.run(corrupt)
        # the reference reproduces the model when every receiver rebuilds its own input
        every = {(r.kind, r.layer, r.head): {} for r in graph.receivers}
        rebuilt, _ = plain.run(clean, every)
    assert (rebuilt - logits).abs().max() < 1e-5
    worst, changes = 0.0, []
    for i, s in enumerate([sender, "MLP0"]):
        for j, (label, names) in enumerate(
            zip(result.receivers, result.receiver_sets, strict=True)
        ):
            keys = [receiver_key(graph, n) for n in names]
            keys = [k for k in keys if plain.upstream(s, k)]
            assert bool(torch.isnan(result.values[i, j])) == (not keys), (s, label)
            if not keys:
                continue
            with torch.no_grad():
                out, _ = plain.run(clean, {k: {s: source[s]} for k in keys})
            worst = max(worst, float((result.per_example[i, j] - metric_of(out)).abs().max()))
            changes.append(float((metric_of(out) - metric_of(logits)).abs().mean()))
    assert worst < 1e-5
    assert sorted(changes)[len(changes) // 2] > 2e-3  # the cells checked move the metric


def test_logits_receiver_reads_the_final_norm_and_unembedding():
    model = build("gpt2")
    plain = Plain(model)
    clean, corrupt = pair()
    result = circuits.path_patch(
        model,
        clean,
        corrupt,
        logit_diff(ANSWER, WRONG),
        senders=["L1H2"],
        receivers=["logits"],
        progress=False,
    )
    final_in = {}
    handle = plain.final.register_forward_pre_hook(lambda m, a: final_in.__setitem__("x", a[0]))
    with torch.no_grad():
        model(clean)
        handle.remove()
        _, base = plain.run(clean)
        _, source = plain.run(corrupt)
        x = final_in["x"] + source["L1H2"] - base["L1H2"]
        logits = model.lm_head(model.transformer.ln_f(x))
    assert (result.per_example[0, 0] - metric_of(logits)).abs().max() < 1e-5


# -- hygiene and bad input -------------------------------------------------------------------


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_no_hook_is_left_after_a_forward_raises_and_others_hooks_are_kept():
    model = build("llama")
    clean, corrupt = pair()

    class Boom(RuntimeError):
        pass

    def explode(module, args, out):
        if out.shape[0] > clean.shape[0]:  # only in the stacked, edited forwards
            raise Boom("mid-forward")

    theirs = model.lm_head.register_forward_hook(explode)
    before = _hooks(model)
    with pytest.raises(Boom):
        circuits.path_patch(model, clean, corrupt, logit_diff(ANSWER, WRONG), progress=False)
    assert _hooks(model) == before == 1 and owned_hooks() == []
    theirs.remove()


def test_bad_input_fails_before_any_forward_with_a_fix():
    model = build("llama")
    clean, corrupt = pair()
    ran = []
    handle = model.register_forward_pre_hook(lambda m, a: ran.append(1))
    metric = logit_diff(ANSWER, WRONG)
    try:
        with pytest.raises(circuits.CircuitError, match="L1H0"):
            circuits.path_patch(model, clean, corrupt, metric, senders=["L1H9"])
        with pytest.raises(circuits.CircuitError, match="no receiver called 'L7H0.q'"):
            circuits.path_patch(model, clean, corrupt, metric, receivers=["L7H0.q"])
        with pytest.raises(PatchingError, match="same length"):
            circuits.path_patch(model, clean, corrupt[:, :-1], metric)
        with pytest.raises(MetricError, match="give a metric"):
            circuits.eap(model, clean, corrupt, None)
        with pytest.raises(PatchingError, match="direction"):
            circuits.path_patch(model, clean, corrupt, metric, direction="sideways")
        with pytest.raises(circuits.CircuitError, match="not an edge"):
            circuits.Circuit.from_edges(model, [("L1H0", "L0H0.q")])
    finally:
        handle.remove()
    assert ran == []
    with pytest.raises(circuits.CircuitError, match="GPT-2, GPT-NeoX/Pythia and Llama"):
        circuits.graph_of(nn.Sequential(nn.Linear(2, 2)))
