"""Your own architecture: register() from Python, or a TOML file of module paths (--adapter)."""

from __future__ import annotations

import dataclasses
import json
import tomllib

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from alti import Explainer, adapters
from alti.adapters import PreLNSpec
from alti.cli import main
from alti.errors import UnsupportedModelError
from tests.conftest import tiny_pre_ln

TEXT = "a warm , funny and beautifully acted film"
TOML = """
model_type = "renamed-llama"
block = "pre_ln"
layers = "layers"
input_norm = "input_layernorm"
attention = "self_attn"
value = "self_attn.v_proj"
output = "self_attn.o_proj"
final_norm = "norm"
embeddings = "embed_tokens"
"""


class RenamedConfig(LlamaConfig):
    model_type = "renamed-llama"


class RenamedForCausalLM(LlamaForCausalLM):
    """A supported family under a name alti has never heard of (as a checkpoint's own code would be)."""

    config_class = RenamedConfig


@pytest.fixture(autouse=True)
def forget_registrations():
    saved = dict(adapters.ADAPTERS)
    yield
    adapters.ADAPTERS.clear()
    adapters.ADAPTERS.update(saved)


def renamed_copy():
    model, tokenizer = tiny_pre_ln("llama")
    config = RenamedConfig(**{k: v for k, v in model.config.to_dict().items() if k != "model_type"})
    copy = RenamedForCausalLM(config).to(torch.float64).eval()
    copy.load_state_dict(model.state_dict())
    return model, copy, tokenizer


def test_an_unknown_type_is_refused_until_registered(tmp_path):
    original, copy, tokenizer = renamed_copy()
    with pytest.raises(UnsupportedModelError, match="'renamed-llama' is not supported.*--adapter"):
        Explainer(copy, tokenizer)
    path = tmp_path / "renamed.toml"
    path.write_text(TOML)
    assert adapters.load_adapter_file(str(path)) == "renamed-llama"
    methods = ["alti", "alti_logit", "rollout"]
    got = Explainer(copy, tokenizer).explain(TEXT, methods)
    want = Explainer(original, tokenizer).explain(TEXT, methods)
    for name in methods:
        np.testing.assert_allclose(got.scores[name], want.scores[name], atol=1e-12)


def test_register_takes_a_spec_or_a_function():
    original, copy, tokenizer = renamed_copy()
    spec = PreLNSpec(
        layers="layers",
        input_norm="input_layernorm",
        attention="self_attn",
        value="self_attn.v_proj",
        output="self_attn.o_proj",
        final_norm="norm",
        embeddings="embed_tokens",
    )
    adapters.register("renamed-llama", spec)
    first = Explainer(copy, tokenizer).explain(TEXT, ["alti"])
    calls = []
    adapters.register(
        "renamed-llama", lambda model, config: calls.append(config.model_type) or spec.resolve(model, config)
    )
    second = Explainer(copy, tokenizer).explain(TEXT, ["alti"])
    assert calls == ["renamed-llama"]
    np.testing.assert_allclose(first.scores["alti"], second.scores["alti"], atol=0)


@pytest.mark.parametrize(
    "text, message",
    [
        ('block = "pre_ln"', "has no model_type"),
        (TOML + 'colour = "red"', "unknown key.*colour"),
        (TOML.replace('final_norm = "norm"\n', ""), "missing key.*final_norm"),
        (TOML.replace('"pre_ln"', '"sideways"'), "block must be one of"),
        (TOML + "causal = 3", "causal must be a bool"),
        ("model_type = ", "not valid TOML"),
        (TOML.replace('"self_attn.v_proj"', '"self_attn.__class__"'), "'self_attn.__class__' is not a module path"),
        (TOML.replace('"norm"', '"_modules.norm"'), "final_norm: '_modules.norm' is not a module path"),
        (TOML.replace('"self_attn.o_proj"', '"self_attn..o_proj"'), "is not a module path"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", "is not UTF-8 text"),
    ],
)
def test_a_bad_adapter_file_gets_one_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UnsupportedModelError, match=message) as error:
        adapters.load_adapter_file(str(path))
    assert "\n" not in str(error.value)


def test_a_registered_spec_refuses_paths_that_are_not_plain_names():
    _, copy, tokenizer = renamed_copy()
    _, spec = adapters.spec_from_dict(tomllib.loads(TOML), "test")
    adapters.register("renamed-llama", dataclasses.replace(spec, embeddings="__dict__"))
    with pytest.raises(UnsupportedModelError, match="'__dict__' is not a module path"):
        Explainer(copy, tokenizer)


def test_a_wrong_module_path_is_named_when_the_model_loads(tmp_path):
    _, copy, tokenizer = renamed_copy()
    path = tmp_path / "typo.toml"
    path.write_text(TOML.replace("self_attn.v_proj", "self_attn.value"))
    adapters.load_adapter_file(str(path))
    with pytest.raises(UnsupportedModelError, match="'self_attn.value' does not exist.*no 'value'"):
        Explainer(copy, tokenizer)


def test_the_cli_takes_an_adapter_file(tmp_path, capsys):
    AutoConfig.register("renamed-llama", RenamedConfig, exist_ok=True)
    AutoModelForCausalLM.register(RenamedConfig, RenamedForCausalLM, exist_ok=True)
    _, copy, tokenizer = renamed_copy()
    copy.config.architectures = ["RenamedForCausalLM"]
    copy.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "renamed.toml").write_text(TOML)
    argv = ["explain", TEXT, "--model", str(tmp_path / "model"), "--methods", "alti,alti_logit", "--format", "json"]
    assert main(argv) == 2
    assert "'renamed-llama'" in capsys.readouterr().err
    assert main([*argv, "--adapter", str(tmp_path / "renamed.toml")]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["explained"]["kind"] == "next_token" and len(document["attributions"]["alti_logit"]) == 9
