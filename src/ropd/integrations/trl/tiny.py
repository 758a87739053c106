"""A tiny randomly initialised student (2 layers, hidden 64) with SmolLM2's tokenizer.

It makes training tests and `ropd bench train` run in seconds on a CPU while going through the
same TRL code paths as a real model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ropd.integrations.trl.student import EMBEDDED_DIRNAME, cache_root, embedded_gguf_path


def _tokenizer():
    from transformers import AutoTokenizer

    cached = cache_root() / "models" / EMBEDDED_DIRNAME
    if (cached / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(cached))
    else:
        gguf = embedded_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_tiny_model(target: Path, *, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Write a random Llama-style model folder at `target` (reused when it already exists)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    if (target / "config.json").is_file():
        return target
    tokenizer = _tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target
