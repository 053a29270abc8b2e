"""Tiny random models for tests, built offline from configs: a byte-level BPE tokenizer
trained on the texts at hand, and a Llama decoder saved with its tied LM head (the stand-in
for SmolLM2 and any causal LM a user passes)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast


def bpe_tokenizer(texts: Iterable[str], vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer trained here on ``texts`` (no [CLS]; BOS, EOS
    and padding are ``<|endoftext|>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )


def tiny_llama_config(vocab_size: int, *, layers: int = 3, positions: int = 256, **extra):
    """The tiny Llama's config (hidden 32, 2 heads, 1 KV head): for a decoder with an LM head
    or, with ``num_labels=1``, a sequence classifier (an imported reward model)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=positions,
        **extra,
    )


def save_tiny_llama(
    path: Path, tokenizer: PreTrainedTokenizerFast, *, layers: int = 3, positions: int = 256
) -> Path:
    """A tiny random Llama decoder (hidden 32, seed 0) saved at ``path`` *with* its tied LM
    head, beside ``tokenizer``."""
    from transformers import LlamaForCausalLM

    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = tiny_llama_config(
        len(tokenizer), layers=layers, positions=positions, tie_word_embeddings=True
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path
