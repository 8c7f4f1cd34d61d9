"""A tiny trained attention-only transformer whose circuit is known: induction heads.

The model is a 2-layer, 4-head Llama-architecture transformer (d_model 64, rotary positions)
with its MLPs removed, trained on random token sequences in which a run of tokens repeats. The
only way to predict a repeat is in context: a *previous-token head* in layer 0 writes "the
token before me was X" into each position, and *induction heads* in layer 1 attend from the
current token to the position right after its earlier occurrence and copy that token
(Elhage et al. 2021, Olsson et al. 2022). The weights ship with the package
(``toy_induction.safetensors``, under 200 KB), so tutorials and tests have a real model with a
ground truth, offline.

- :func:`load` returns the shipped model; :func:`train` retrains it from a seed (the recipe
  that produced the shipped weights is the default; ``scripts/train_toy.py`` writes them).
- :func:`repeated_sequences` makes task data; :func:`tokens` turns ids into labels and
  :class:`Tokenizer` does the same for the viewer (``load`` attaches one as ``model.tokenizer``).
- :func:`head_scores` measures each head's previous-token and induction attention, and
  :func:`induction_accuracy` the in-context accuracy on the repeated half.

Needs ``transformers`` (``pip install "interp-magics[hf]"``) and its ``safetensors``.

Apart from the missing MLPs (``mlp_out`` is zero) it is a standard ``LlamaForCausalLM``:
capture, the attention viewer and patching treat it like any Llama. Rotary positions make
"attend to the previous token" easy to learn and a fixed positional offset useless (the
repeat's distance varies in training), so the model has to learn the induction mechanism.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHTS = Path(__file__).parent / "data" / "toy_induction.safetensors"
SYMBOLS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"  # 48 content tokens
VOCAB = ("<bos>", *SYMBOLS)
BOS = 0
HALF = 16  # tokens in each half of a training sequence


#: The shipped model's circuit, as :func:`head_scores` measures it (the tests check it):
#: one previous-token head in layer 0, and induction heads in layer 1 (head 3 the weakest).
PREVIOUS_TOKEN_HEAD = (0, 2)
INDUCTION_HEADS = ((1, 0), (1, 1), (1, 2), (1, 3))


@dataclass(frozen=True)
class Recipe:
    """How the toy model is trained; the defaults produced the shipped weights."""

    seed: int = 0
    steps: int = 2000
    batch: int = 64
    half: int = HALF
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100


class NoMLP(nn.Module):
    """Stands where a GPT-2 block's MLP was: contributes nothing to the residual stream."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Return zeros shaped like ``hidden``."""
        return torch.zeros_like(hidden)


def config() -> Any:
    """Return the ``LlamaConfig`` of the toy model (2 layers, 4 heads, d_model 64, rotary)."""
    from transformers import LlamaConfig

    # eager: the attention weights exist (the viewer and `pattern` captures need them)
    eager: dict[str, Any] = {"attn_implementation": "eager"}
    return LlamaConfig(
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        hidden_size=64,
        intermediate_size=1,  # the MLPs are replaced by NoMLP
        vocab_size=len(VOCAB),
        max_position_embeddings=64,
        bos_token_id=BOS,
        eos_token_id=BOS,
        pad_token_id=BOS,
        tie_word_embeddings=False,
        **eager,
    )


def build(seed: int | None = None) -> Any:
    """Return a randomly initialised attention-only toy model, in eval mode.

    ``seed`` seeds torch's global generator first, so the same seed gives the same weights.
    """
    from transformers import LlamaForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    model = LlamaForCausalLM(config())
    for layer in model.model.layers:
        layer.mlp = NoMLP()
        layer.post_attention_layernorm = nn.Identity()  # only fed the MLP
    return model.eval()


def load(path: str | Path | None = None) -> Any:
    """Return the trained toy model (the shipped weights unless ``path`` is given), in eval mode."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(
            f"no toy model weights at {path}; run scripts/train_toy.py to write them"
        )
    model = build()
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not hold toy-model weights (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    model.tokenizer = Tokenizer()  # token labels for the attention viewer and patching
    return model.eval()


def recipe_of(path: str | Path | None = None) -> Recipe:
    """Return the training recipe stored in a weights file's metadata."""
    from safetensors import safe_open

    with safe_open(str(path or WEIGHTS), framework="pt") as f:
        meta = f.metadata() or {}
    return Recipe(**json.loads(meta.get("recipe", "{}")))


def save(model: Any, path: str | Path, recipe: Recipe) -> Path:
    """Write ``model``'s weights (and the recipe, as metadata) to ``path``; return the path."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"recipe": json.dumps(asdict(recipe))})
    return path


def repeated_sequences(
    n: int, half: int = HALF, *, seed: int | None = 0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return ``n`` sequences ``[BOS, x_1..x_half, x_1..x_half]``, shape ``[n, 1 + 2*half]``.

    Tokens within a half are distinct, so each has exactly one earlier occurrence to look up.
    """
    if n < 1 or not 1 <= half <= len(SYMBOLS):
        raise ValueError(f"need n >= 1 and 1 <= half <= {len(SYMBOLS)}; got n={n}, half={half}")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    first = torch.rand(n, len(SYMBOLS), generator=generator).argsort(dim=1)[:, :half] + 1
    bos = torch.full((n, 1), BOS, dtype=torch.long)
    return torch.cat([bos, first, first], dim=1)


def training_batch(
    batch: int, length: int = 1 + 2 * HALF, *, generator: torch.Generator
) -> torch.Tensor:
    """Return ``[batch, length]`` training sequences: random tokens holding one repeated run.

    Each sequence is ``<bos>`` then random tokens, with a run of 8-16 distinct tokens repeated
    right after itself at a random place. The run's length and place vary, so no fixed
    positional offset finds the earlier copy: the model must look it up by content (the
    induction mechanism) rather than by position.
    """
    n = len(SYMBOLS)
    ids = torch.randint(1, n + 1, (batch, length), generator=generator)
    ids[:, 0] = BOS
    max_run = min(16, (length - 1) // 2)
    runs = torch.randint(min(8, max_run), max_run + 1, (batch,), generator=generator)
    for i in range(batch):
        run = int(runs[i])
        start = 1 + int(torch.randint(0, length - 2 * run, (1,), generator=generator))
        chunk = torch.randperm(n, generator=generator)[:run] + 1
        ids[i, start : start + run] = chunk
        ids[i, start + run : start + 2 * run] = chunk
    return ids


def tokens(ids: torch.Tensor | list[int]) -> list[str]:
    """Return the token labels of one sequence of ids (``<bos>``, ``A``, ``b``, ...)."""
    values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    if values and isinstance(values[0], list):
        raise ValueError("tokens() takes one sequence; index the batch first (ids[0])")
    return [VOCAB[int(i)] for i in values]


def encode(text: str) -> torch.Tensor:
    """Return the ids of ``text`` (one character per token, ``<bos>`` prepended), ``[1, len+1]``."""
    unknown = sorted({c for c in text if c not in SYMBOLS})
    if unknown:
        raise ValueError(f"the toy vocabulary has A-Z and a-v only; not {''.join(unknown)!r}")
    return torch.tensor([[BOS, *(SYMBOLS.index(c) + 1 for c in text)]])


class Tokenizer:
    """The toy vocabulary as a minimal tokenizer: one character per token, ``<bos>`` first.

    Enough of the HuggingFace interface for token labels in the attention viewer and in
    patching results (``convert_ids_to_tokens``) and for text input (``tokenizer(texts)``).
    """

    def __call__(self, texts: str | list[str], **_: Any) -> dict[str, torch.Tensor]:
        """Return ``{"input_ids": [batch, len + 1]}`` for strings of equal length."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        if len({len(t) for t in batch}) > 1:
            raise ValueError("the toy tokenizer does not pad: give strings of equal length")
        return {"input_ids": torch.cat([encode(t) for t in batch])}

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        """Return the label of each id."""
        return tokens(ids)


@torch.no_grad()
def induction_accuracy(model: Any, ids: torch.Tensor) -> dict[str, float]:
    """Return next-token accuracy on the first and the repeated half of ``ids``.

    On the first half only chance is possible (1/48 at best); on the repeated half an
    induction circuit predicts every token but the first of the repeat.
    """
    half = (ids.shape[1] - 1) // 2
    pred = model(ids).logits.argmax(-1)
    correct = pred[:, :-1] == ids[:, 1:]  # position t predicts token t+1
    return {
        "first_half": correct[:, 1:half].float().mean().item(),
        "repeated_half": correct[:, half + 1 :].float().mean().item(),
    }


@torch.no_grad()
def head_scores(model: Any, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Return each head's previous-token and induction scores, ``[layer, head]`` each.

    previous-token: mean attention from position t to t-1; induction: mean attention from a
    token in the repeated half to the position just after its first occurrence (t - half + 1).
    Both are 0 to 1; a head that does the job scores near 1.
    """
    half = (ids.shape[1] - 1) // 2
    pattern = torch.stack(model(ids, output_attentions=True).attentions, dim=1)
    # pattern: [batch, layer, head, query, key]
    q = torch.arange(2, ids.shape[1])
    prev = pattern[..., q, q - 1].mean(dim=(0, -1))
    q = torch.arange(half + 1, ids.shape[1])
    induction = pattern[..., q, q - half + 1].mean(dim=(0, -1))
    return {"previous_token": prev, "induction": induction}


def train(recipe: Recipe | None = None, *, progress: bool = False) -> tuple[Any, list[float]]:
    """Return the toy model trained with ``recipe`` (default: the shipped one) and its losses.

    Next-token cross-entropy on a fresh :func:`training_batch` every step, AdamW with linear warm-up
    and cosine decay; deterministic for a seed on a given machine (CPU, float32).
    """
    import math

    from tqdm.auto import tqdm

    recipe = recipe or Recipe()
    model = build(seed=recipe.seed).train()
    generator = torch.Generator().manual_seed(recipe.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)

    def schedule(step: int) -> float:
        if step < recipe.warmup:
            return (step + 1) / recipe.warmup
        done = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
        return 0.5 * (1 + math.cos(math.pi * done))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    losses = []
    for _ in tqdm(range(recipe.steps), disable=not progress, desc="training the toy model"):
        ids = training_batch(recipe.batch, 1 + 2 * recipe.half, generator=generator)
        logits = model(ids).logits[:, :-1]
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return model.eval(), losses
