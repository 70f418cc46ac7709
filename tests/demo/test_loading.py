"""alti.loading: local directories, hub names that cannot be reached, checkpoints that are not classifiers."""

from __future__ import annotations

import json
import time

import huggingface_hub
import pytest
import torch
from transformers import AutoConfig, BertForMaskedLM, BertModel

from alti.errors import ModelLoadError, UnsupportedModelError
from alti.loading import load_model
from tests.conftest import tiny_config, tiny_model, tiny_tokenizer

HUB_NAME = "textattack/bert-base-uncased-SST-2"


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
def test_a_local_directory_loads_the_same_classifier(tmp_path, model_type):
    model, tokenizer = tiny_model(model_type)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer, name = load_model(str(tmp_path), "cpu")
    assert name == str(tmp_path)
    assert not loaded.training
    assert loaded.config._attn_implementation == "eager"
    ids = loaded_tokenizer("a short test sentence", return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(**ids).logits, model(**ids).logits)


def test_a_checkpoint_without_a_head_is_refused(tmp_path):
    BertModel(tiny_config("bert")).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="BertModel checkpoint without a head") as error:
        load_model(str(tmp_path), "cpu")
    assert "\n" not in str(error.value)


def test_a_masked_lm_loads_with_its_head(tmp_path):
    BertForMaskedLM(tiny_config("bert")).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    model, _, _ = load_model(str(tmp_path), "cpu")
    assert type(model).__name__ == "BertForMaskedLM"


def test_an_unsupported_type_is_refused_before_the_weights_load(tmp_path):
    config = AutoConfig.for_model(
        "opt",
        hidden_size=16,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        word_embed_proj_dim=16,
        vocab_size=100,
    )
    config.architectures = ["OPTForCausalLM"]
    config.save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="'opt' model.*llama.*--adapter"):
        load_model(str(tmp_path), "cpu")


def test_a_checkpoint_without_a_trained_head_is_refused(tmp_path):
    BertModel(tiny_config("bert")).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["architectures"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="no trained classification head.*classifier.weight"):
        load_model(str(tmp_path), "cpu")


def test_a_missing_directory_says_so(tmp_path):
    with pytest.raises(ModelLoadError, match="no such model directory.*--model demo"):
        load_model(str(tmp_path / "nowhere" / "model"), "cpu")


def test_a_file_is_not_a_model_directory(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_model(str(path), "cpu")


def test_a_directory_without_config_says_so(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot read the config"):
        load_model(str(tmp_path), "cpu")


def test_hub_offline_fails_fast_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as error:
        load_model(HUB_NAME, "cpu")
    elapsed = time.monotonic() - start
    message = str(error.value)
    assert "HF_HUB_OFFLINE" in message and HUB_NAME in message and "--model demo" in message
    assert "\n" not in message
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_hub_without_network_fails_in_one_try_with_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    calls = []

    def unreachable(url, timeout=None, **kwargs):
        calls.append(timeout)
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", unreachable)
    with pytest.raises(ModelLoadError, match="cannot reach the Hugging Face hub.*--model demo") as error:
        load_model(HUB_NAME, "cpu")
    assert "\n" not in str(error.value)
    assert len(calls) == 1 and calls[0] <= 10


def test_an_invalid_name_is_neither_path_nor_hub_id(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="neither a local directory nor a valid"):
        load_model("not a model name", "cpu")


class Wrapped(dict):
    """A state dict inside a class of its own: a pickle torch's safe loader refuses."""


def test_a_pickle_torch_refuses_is_one_line_that_points_to_safetensors(tmp_path, capfd):
    from safetensors.torch import load_file

    from alti.cli import main

    model, tokenizer = tiny_model("bert")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors").unlink()
    torch.save(Wrapped(weights), tmp_path / "pytorch_model.bin")
    capfd.readouterr()  # save_pretrained's own progress bar
    with pytest.raises(ModelLoadError, match="pickle that torch's safe loader refuses .*Wrapped.*safetensors"):
        load_model(str(tmp_path), "cpu")
    assert main(["explain", "good film", "--model", str(tmp_path)]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "safetensors" in err and "Traceback" not in err
