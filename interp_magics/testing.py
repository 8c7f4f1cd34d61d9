"""Small real models for tests, benchmarks and examples, built offline.

Everything here builds from configs with random weights (no download): GPT-2, Llama
(grouped-query attention) and GPT-NeoX models, a byte-level BPE tokenizer trained on a few
sentences, and a TransformerLens ``TransformerBridge`` over a GPT-2. Requires ``transformers``
(and ``transformer_lens`` for the bridge).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

SENTENCES = (
    "the cat sat on the mat",
    "when mary and john went to the store, john gave a drink to mary",
    "attention is all you need",
    "the quick brown fox jumps over the lazy dog",
)


def gpt2(
    n_layer: int = 3, n_embd: int = 64, n_head: int = 4, vocab_size: int = 97, seed: int = 0
) -> Any:
    """Return a random-weight ``GPT2LMHeadModel`` in eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        vocab_size=vocab_size,
        n_positions=max(128, 2 * n_embd),
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config).eval()


def llama(
    n_layer: int = 3, hidden: int = 64, heads: int = 4, kv_heads: int = 2, seed: int = 0
) -> Any:
    """Return a random-weight ``LlamaForCausalLM`` with grouped-query attention, in eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        num_hidden_layers=n_layer,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=2 * hidden,
        vocab_size=97,
        max_position_embeddings=128,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def neox(n_layer: int = 3, hidden: int = 64, heads: int = 4, seed: int = 0) -> Any:
    """Return a random-weight ``GPTNeoXForCausalLM`` (Pythia layout), in eval mode."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    config = GPTNeoXConfig(
        num_hidden_layers=n_layer,
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        vocab_size=97,
        max_position_embeddings=128,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPTNeoXForCausalLM(config).eval()


def bpe_tokenizer(vocab_size: int = 400) -> Any:
    """Return a ``PreTrainedTokenizerFast`` (byte-level BPE) trained offline on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(SENTENCES), trainer)
    special = "<|endoftext|>"
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=special, eos_token=special, unk_token=special
    )


def transformer_bridge(hf_model: Any, directory: str | Path | None = None) -> Any:
    """Return a TransformerLens ``TransformerBridge`` over ``hf_model`` (a GPT-2), offline.

    The bridge needs a tokenizer and config on disk; both are written to ``directory`` (a new
    temporary folder by default). The tokenizer's vocabulary must not exceed the model's.
    """
    from transformer_lens.model_bridge import TransformerBridge

    folder = Path(directory or tempfile.mkdtemp(prefix="interp-magics-bridge-"))
    tok = bpe_tokenizer(vocab_size=min(400, int(hf_model.config.vocab_size)))
    tok.save_pretrained(folder)
    hf_model.save_pretrained(folder)
    return TransformerBridge.boot_transformers(str(folder), hf_model=hf_model, device="cpu")
