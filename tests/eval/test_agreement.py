"""Subject-verb agreement: a masked LM explained at [MASK], p(correct form) against the wrong one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForMaskedLM

from alti import Explainer
from alti import faithfulness as F
from alti.cli import main
from alti.data import load_dataset
from alti.errors import InputError
from alti.methods import gradients
from alti.targets import MaskedTokenTarget
from tests.conftest import tiny_tokenizer

ITEMS = (
    "1\tthe keys to the cabinet are here\tthe keys to the cabinet ***mask*** here\tare\tis\n"
    "0\tthe dog runs home\tthe dog ***mask*** home\truns\trun\n"
)


@pytest.fixture(scope="module")
def masked_lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-mlm")
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    config = AutoConfig.for_model(
        "bert",
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
    )
    model = AutoModelForMaskedLM.from_config(config, attn_implementation="eager")
    model.config.architectures = ["BertForMaskedLM"]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    path = tmp_path_factory.mktemp("sva") / "lgd.tsv"
    path.write_text(ITEMS)
    return str(path)


def load(path):
    return Explainer.from_pretrained(path, device="cpu")


def explain(explainer, sample, methods, options=None):
    return explainer.explain(sample.text, methods, target=sample.target, foil=sample.foil, options=options)


def pair_probability(explainer, ids, position, target):
    with torch.no_grad():
        logits = explainer.model(input_ids=torch.tensor([ids])).logits[0, position]
    return float(torch.softmax(logits[[target.index, target.foil]].double(), -1)[0])


def test_scores_are_read_at_the_mask_and_attribute_p_correct(masked_lm, items):
    explainer = load(masked_lm)
    sample = load_dataset(f"sva:{items}")[0]
    explanation = explain(explainer, sample, ["alti", "attention", "ig_dot"], {"ig_dot": {"steps": 64}})
    position = explanation.tokens.index("[MASK]")
    assert explanation.target_position == position == 6
    assert explanation.prediction.labels == ["are", "is"]
    assert isinstance(explanation.target, MaskedTokenTarget)
    assert explanation.target.label == "are" and explanation.target.foil_label == "is"

    matrices = explainer.layer_matrices(explanation.input_ids, ["alti", "attention"])
    product = matrices["alti"][1] @ matrices["alti"][0]
    np.testing.assert_allclose(explanation.scores["alti"], product[position], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(explanation.scores["attention"], matrices["attention"][1][position], rtol=1e-6)

    target = explanation.target
    baseline = gradients.ig_baseline(explainer, torch.tensor([explanation.input_ids]))[0].tolist()
    p = pair_probability(explainer, explanation.input_ids, position, target)
    p_baseline = pair_probability(explainer, baseline, position, target)
    assert explanation.prediction.probabilities[0] == pytest.approx(p)
    assert explanation.scores["ig_dot"].sum() == pytest.approx(p - p_baseline, abs=1e-5)


def test_deletion_keeps_the_mask_and_reads_p_correct(masked_lm, items):
    explainer = load(masked_lm)
    sample = load_dataset(f"sva:{items}")[0]
    explanation = explain(explainer, sample, ["alti"])
    calls = []
    real = explainer.quantities
    explainer.quantities = lambda id_lists, target, batch_size=32: (
        calls.extend(id_lists) or real(id_lists, target, batch_size)
    )
    curves = F.explanation_curves(explainer, explanation)
    mask_id = explainer.tokenizer.mask_token_id
    assert calls and all(list(ids).count(mask_id) == 1 for ids in calls)
    comp = curves[("alti", "comprehensiveness")]
    assert comp.raw[0] == pytest.approx(explanation.prediction.probabilities[0])


def test_verb_forms_must_be_single_tokens(masked_lm):
    explainer = load(masked_lm)
    with pytest.raises(InputError, match="several tokens"):
        explainer.explain("the keys [MASK] here", ["alti"], target="are", foil="zzqxjw")


def test_cli_attribute_and_evaluate_agreement(masked_lm, items, tmp_path, capsys):
    output = tmp_path / "sva.jsonl"
    common = ["--model", masked_lm, "--dataset", f"sva:{items}", "--methods", "alti,grad_l2", "--device", "cpu"]
    assert main(["attribute", *common, "--output", str(output)]) == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["target_position"] for r in records] == [6, 3]
    assert records[0]["target"] == {"token": "are", "id": records[0]["target"]["id"]}
    assert records[0]["foil"]["token"] == "is" and records[0]["explained"]["kind"] == "masked_token"
    capsys.readouterr()
    assert main(["evaluate", *common, "--format", "json"]) == 0
    fresh = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", masked_lm, "--attributions", str(output), "--format", "json"]) == 0
    reused = json.loads(capsys.readouterr().out)
    assert fresh["samples"] == reused["samples"] == 2
    for method in ("alti", "grad_l2"):
        assert reused["methods"][method] == pytest.approx(fresh["methods"][method], abs=1e-9)


def test_cli_agreement_needs_a_masked_lm(items, capsys):
    assert main(["evaluate", "--dataset", f"sva:{items}"]) == 2
    assert "masked LM" in capsys.readouterr().err
