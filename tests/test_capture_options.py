"""Capture options: dtype, positions, inputs, gradients, output selection, copies, errors."""

import dataclasses
import warnings

import pytest
import torch
from torch import nn

from interp_magics import CaptureError, NothingCapturedWarning, capture


def test_float16_halves_nbytes_and_keeps_values(gpt2, ids):
    with capture(gpt2, "transformer.h.*.mlp") as full:
        gpt2(ids)
    with capture(gpt2, "transformer.h.*.mlp", dtype="float16") as half:
        gpt2(ids)
    assert half.nbytes * 2 == full.nbytes
    for key in full:
        assert half[key].dtype == torch.float16
        assert torch.equal(half[key], full[key].half())


@pytest.mark.parametrize(
    ("positions", "index"),
    [
        (-1, [8]),
        ([0, 2, -1], [0, 2, 8]),
        ("1:5", [1, 2, 3, 4]),
        ("::4", [0, 4, 8]),
        ("3,5", [3, 5]),
    ],
)
def test_positions_select_before_copy(gpt2, ids, positions, index):
    with capture(gpt2, ["resid_post", "pattern.0"]) as full:
        gpt2(ids)
    with capture(gpt2, ["resid_post", "pattern.0"], positions=positions) as part:
        gpt2(ids)
    assert part.positions == tuple(index)
    for layer in range(3):
        assert torch.equal(part[f"resid_post.{layer}"], full[f"resid_post.{layer}"][:, index])
    # attention patterns keep the chosen query rows and every key
    assert torch.equal(part["pattern.0"], full["pattern.0"][:, :, index, :])
    assert part.nbytes < full.nbytes


@pytest.mark.parametrize("bad", [9, [0, -10], "20:30"])
def test_positions_out_of_range_is_a_clear_error(gpt2, ids, bad):
    with pytest.raises(CaptureError, match="out of range|select nothing"):
        with capture(gpt2, "resid_post", positions=bad) as acts:
            gpt2(ids)
    assert len(acts) == 0


def test_position_past_the_sequence_is_refused_before_the_forward(gpt2, ids):
    ran = []
    h = gpt2.transformer.h[0].register_forward_pre_hook(lambda m, a: ran.append(1))
    try:
        with pytest.raises(CaptureError) as err, capture(gpt2, "resid_post", positions=50):
            gpt2(ids)
    finally:
        h.remove()
    assert ran == []
    assert "sequence length 9" in str(err.value) and "-9..8" in str(err.value)


@pytest.mark.parametrize("bad", ["a:b", 1.5, [], [1.0], "1:2:3:4", slice(0, 4, -1)])
def test_malformed_positions_fail_before_running(gpt2, bad):
    with pytest.raises(CaptureError):
        capture(gpt2, "resid_post", positions=bad)


def test_inputs_are_the_previous_blocks_output(gpt2, ids):
    with capture(gpt2, "transformer.h.{1-2}", inputs=True) as acts:
        gpt2(ids)
    assert set(acts) == {
        "transformer.h.1",
        "transformer.h.1:input",
        "transformer.h.2",
        "transformer.h.2:input",
    }
    assert torch.equal(acts["transformer.h.2:input"], acts["transformer.h.1"])
    assert acts.info("transformer.h.2:input").kind == "input"


def test_grad_equals_autograd_reference(gpt2, ids):
    target = ids[:, 1:]

    def loss_of(out):
        return nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1), target.flatten())

    out = gpt2(ids, output_hidden_states=True)
    hidden = out.hidden_states
    for h in hidden:
        h.retain_grad()
    loss_of(out).backward()
    gpt2.zero_grad()

    with capture(gpt2, "resid_post", grad=True, positions="2:6") as acts:
        loss_of(gpt2(ids)).backward()
    gpt2.zero_grad()
    for layer in range(2):  # the last block output is followed by ln_f, not a hidden state
        torch.testing.assert_close(
            acts[f"resid_post.{layer}:grad"], hidden[layer + 1].grad[:, 2:6], rtol=1e-5, atol=1e-8
        )
        assert acts.info(f"resid_post.{layer}:grad").kind == "grad"
    assert acts["resid_post.2:grad"].shape == (2, 4, 64)


def test_grad_without_backward_warns(gpt2, ids):
    with pytest.warns(NothingCapturedWarning, match="backward"):
        with capture(gpt2, "resid_post.0", grad=True):
            gpt2(ids)


def test_grad_under_no_grad_is_noted(gpt2, ids):
    with capture(gpt2, "resid_post.0", grad=True) as acts, torch.no_grad():
        gpt2(ids)
    assert "resid_post.0:grad" not in acts
    assert any("did not require grad" in n for n in acts.notes)


class Pair(nn.Module):
    def forward(self, x):
        return x + 1, x * 2


class Dict(nn.Module):
    def forward(self, x):
        return {"aux": x * 3, "last_hidden_state": x - 1}


@dataclasses.dataclass
class Out:
    note: str
    value: torch.Tensor


class DataOut(nn.Module):
    def forward(self, x):
        return Out("n", x * 5)


class Nothing(nn.Module):
    def forward(self, x):
        return None


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.pair, self.dict, self.data, self.lin = Pair(), Dict(), DataOut(), nn.Linear(4, 4)
        self.nothing = Nothing()

    def forward(self, x):
        a, _ = self.pair(x)
        b = self.dict(a)["last_hidden_state"]
        c = self.data(b).value
        self.nothing(c)
        y = self.lin(c)
        y.mul_(2)  # in-place change after the hook ran
        return y


def test_model_output_gives_last_hidden_state(gpt2, ids):
    with capture(gpt2, "transformer") as acts:  # GPT2Model returns a ModelOutput
        gpt2(ids)
    assert torch.equal(acts["transformer"], gpt2.transformer(ids).last_hidden_state)


def test_default_output_rule_for_tuples_dicts_and_dataclasses():
    net, x = Net(), torch.randn(2, 3, 4)
    with capture(net, ["pair", "dict", "data", "lin"]) as acts:
        net(x)
    assert torch.equal(acts["pair"], x + 1)
    assert torch.equal(acts["dict"], (x + 1) - 1)  # last_hidden_state wins over the first key
    assert torch.equal(acts["data"], ((x + 1) - 1) * 5)


@pytest.mark.parametrize(
    ("select", "expected"),
    [(1, lambda x: x * 2), (-1, lambda x: x * 2), (lambda o: o[0] * 0, lambda x: x * 0)],
)
def test_select_chooses_the_element(select, expected):
    net, x = Net(), torch.randn(2, 3, 4)
    with capture(net, "pair", select=select) as acts:
        net(x)
    assert torch.equal(acts["pair"], expected(x))


def test_select_by_key():
    net, x = Net(), torch.randn(2, 3, 4)
    with capture(net, "dict", select="aux") as acts:
        net(x)
    assert torch.equal(acts["dict"], (x + 1) * 3)


@pytest.mark.parametrize(
    ("pattern", "select", "match"),
    [
        ("lin", 0, "indexes a tuple"),
        ("dict", "nope", "aux"),
        ("pair", 5, "out of range"),
        ("nothing", None, "holds no tensor"),
    ],
)
def test_bad_select_or_tensorless_output_is_clear(pattern, select, match):
    net = Net()
    with pytest.raises(CaptureError, match=match), capture(net, pattern, select=select):
        net(torch.randn(2, 3, 4))


def test_stored_tensors_are_detached_copies():
    net, x = Net(), torch.randn(2, 3, 4, requires_grad=True)
    with capture(net, "lin") as acts:
        y = net(x)
    before_inplace = y / 2
    assert torch.equal(acts["lin"], before_inplace.detach())
    assert not acts["lin"].requires_grad
    with torch.no_grad():
        net.lin.weight.add_(1.0)
        y.add_(100)
    assert torch.equal(acts["lin"], before_inplace.detach())
    assert acts["lin"].untyped_storage().data_ptr() != y.untyped_storage().data_ptr()


def test_repeated_calls_are_all_kept(gpt2, ids):
    with capture(gpt2, "resid_post.0") as acts:
        gpt2(ids)
        gpt2(ids[:1])
    assert list(acts) == ["resid_post.0", "resid_post.0#1"]
    assert acts.info("resid_post.0#1").call == 1
    torch.testing.assert_close(
        acts["resid_post.0#1"], acts["resid_post.0"][:1]
    )  # batch-size numerics


def test_stack_orders_layers_naturally():
    layers = nn.Sequential(*[nn.Linear(3, 3) for _ in range(12)])
    x = torch.randn(2, 3)
    with capture(layers, "*") as acts:
        layers(x)
    stacked = acts.stack("*")
    assert stacked.shape == (12, 2, 3)
    assert torch.equal(stacked[10], acts["10"])
    assert acts.match("{9-11}") == ["9", "10", "11"]


def test_attention_mask_recorded_from_positional_args(gpt2, ids):
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with capture(gpt2, "resid_post.0") as acts:
        gpt2(ids, None, mask)  # input_ids, past, attention_mask
    assert torch.equal(acts.attention_mask, mask)
    assert "2 pad positions" in repr(acts) or "3 pad positions" in repr(acts)


def test_nothing_captured_warns():
    net = Net()
    with pytest.warns(NothingCapturedWarning, match="never called"):
        with capture(net, "lin") as acts:
            pass
    assert len(acts) == 0


def test_model_ran_but_modules_did_not():
    net = Net()
    net.unused = nn.Linear(4, 4)
    with pytest.warns(NothingCapturedWarning, match="none of the 1 matched"):
        with capture(net, "unused"):
            net(torch.randn(1, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dtype": "int8"}, "unknown dtype"),
        ({"dtype": torch.int64}, "not a floating"),
        ({"device": "gpu"}, "unknown device"),
        ({"max_bytes": "lots"}, "cannot read size"),
        ({"max_bytes": -5}, "positive"),
    ],
)
def test_bad_options_fail_before_hooks(gpt2, kwargs, match):
    with pytest.raises(CaptureError, match=match):
        capture(gpt2, "resid_post", **kwargs)


def test_cuda_device_is_checked(gpt2, ids):
    if not torch.cuda.is_available():
        with pytest.raises(CaptureError, match="CUDA is not available"):
            capture(gpt2, "resid_post", device="cuda")
        return
    model = gpt2.cuda()  # on a GPU machine: GPU -> CPU copies are synchronised at exit
    with capture(model, "resid_post", device="cpu") as acts:
        out = model(ids.cuda(), output_hidden_states=True)
    assert acts["resid_post.0"].device.type == "cpu"
    assert torch.equal(acts["resid_post.0"], out.hidden_states[1].cpu())


def test_bad_patterns_list_closest_names(gpt2):
    with pytest.raises(CaptureError) as err:
        capture(gpt2, "transformer.h.*.mlpp")
    assert "transformer.h.*.mlp" in str(err.value)
    with pytest.raises(CaptureError, match="out of range: the model has 3 layers"):
        capture(gpt2, "resid_post.7")
    with pytest.raises(CaptureError, match="non-empty"):
        capture(gpt2, [])
    with pytest.raises(CaptureError, match="unbalanced"):
        capture(gpt2, "transformer.h.{0-1.mlp")


def test_canonical_site_on_unknown_architecture_says_use_a_glob():
    with pytest.raises(CaptureError, match="glob over module names"):
        capture(Net(), "resid_post")
    layers = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with pytest.raises(CaptureError, match=r"e\.g\. '\*'"):
        capture(layers, "resid_post")


def test_format_bytes():
    from interp_magics.core.units import format_bytes

    assert [format_bytes(n) for n in (0, 1023, 1024, 1536 * 1024, 3 * 2**30, 5 * 2**40)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 MiB",
        "3.0 GiB",
        "5120.0 GiB",
    ]


def test_not_a_module_is_clear():
    with pytest.raises(CaptureError, match="expected a torch.nn.Module, got str"):
        capture("gpt2", "resid_post")


def test_cache_is_read_only_and_reports(gpt2, ids):
    with capture(gpt2, ["transformer.h.0.mlp", "resid_post.0"], dtype="float16") as acts:
        gpt2(ids)
    with pytest.raises(TypeError):
        acts["x"] = torch.zeros(1)  # type: ignore[index]
    with pytest.raises(KeyError, match="close names"):
        acts["transformer.h.0.mlpp"]
    df = acts.to_dataframe()
    assert list(df["name"]) == ["transformer.h.0.mlp", "resid_post.0"]
    assert df["bytes"].sum() == acts.nbytes == 2 * 2 * 9 * 64 * 2
    html = acts._repr_html_()
    assert (
        "<table>" in html
        and "transformer.h.0.mlp" in html
        and "total" in html
        and "4.5 KiB" in html
    )
    text = repr(acts)
    assert "float16" in text and "(2, 9, 64)" in text and "total" in text


def test_html_escapes_module_names():
    net = nn.Module()
    net.add_module("<b>x</b>", nn.Linear(2, 2))
    net.forward = lambda x: net.get_submodule("<b>x</b>")(x)  # type: ignore[method-assign]
    with capture(net, "*") as acts:
        net(torch.randn(1, 2))
    assert "<b>x</b>" not in acts._repr_html_() and "&lt;b&gt;x&lt;/b&gt;" in acts._repr_html_()


def test_capture_is_single_entry(gpt2, ids):
    cap = capture(gpt2, "resid_post.0")
    with cap as first:
        with pytest.raises(CaptureError, match="already active"):
            cap.__enter__()
        gpt2(ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with cap as again:  # re-entering after it ended starts a fresh capture
            gpt2(ids[:1])
    assert list(again) == ["resid_post.0"]
    assert again is not first and first["resid_post.0"].shape[0] == 2  # earlier results kept
