"""Language models through the CLI: explain with --target/--foil, attribute and evaluate on prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alti.cli import main
from tests.conftest import tiny_pre_ln

PROMPTS = [
    {"text": "a warm , funny and beautifully acted", "target": "film", "foil": "plot"},
    {"text": "the plot is thin but the acting is", "target": "great"},
    {"text": "not bad at all , i would see it"},
]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    model, tokenizer = tiny_pre_ln("llama")
    model.float().config.architectures = ["LlamaForCausalLM"]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return str(path)


def run(capfd, *argv):
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def test_explain_json_of_a_next_token_against_a_foil(llama, capfd):
    code, out, err = run(
        capfd,
        "explain",
        PROMPTS[0]["text"],
        "--model",
        llama,
        "--methods",
        "alti,alti_logit,logit",
        "--target",
        "film",
        "--foil",
        "plot",
        "--format",
        "json",
        "--layers",
    )
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["target"]["token"] == "film" and doc["foil"]["token"] == "plot"
    assert doc["explained"] == {
        "kind": "next_token",
        "position": len(doc["tokens"]) - 1,
        "quantity": "logit difference",
    }
    assert doc["target_position"] == len(doc["tokens"]) - 1
    top = doc["prediction"]["top"]
    assert (
        len(top) == 10 and top[0]["id"] == doc["prediction"]["index"] and set(top[0]) == {"token", "id", "probability"}
    )
    terms = doc["logit_terms"]
    rebuilt = (
        sum(doc["attributions"]["alti_logit"])
        + sum(terms["attention_bias"])
        + sum(terms["mlp"])
        + terms["final_norm_bias"]
        + terms["head_bias"]
    )
    assert rebuilt == pytest.approx(terms["logit"], abs=1e-4)
    assert np.triu(np.array(doc["layers"]["alti"]), 1).max() == 0


def test_explain_in_the_terminal_says_what_is_explained(llama, capfd):
    code, out, _ = run(
        capfd,
        "explain",
        PROMPTS[0]["text"],
        "--model",
        llama,
        "--methods",
        "alti_logit",
        "--target",
        "film",
        "--foil",
        "plot",
    )
    assert code == 0
    assert "next token: " in out and "explaining 'film' against 'plot'" in out and "logit difference" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--target", "id:99999999"], "outside the vocabulary"),
        (["--target", "film", "--foil", "film"], "same token"),
        (["--methods", "globenc"], "globenc does not apply"),
        (["--target", "negative"], None),
    ],
)
def test_bad_targets_are_one_line(llama, capfd, argv, message):
    code, _, err = run(capfd, "explain", "the plot", "--model", llama, *argv)
    if message is None:  # a word the vocabulary splits: the first piece, said in one line
        assert code == 0
        return
    assert code == 2 and len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_a_target_of_several_pieces_is_said(llama, capfd):
    code, _, err = run(capfd, "explain", "the plot", "--model", llama, "--target", "beautifully acted")
    assert code == 0
    assert err.splitlines() == [
        "alti: warning: the target 'beautifully acted' is 2 tokens ('beautifully' + 'acted'); using the first, 'beautifully'"
    ]


def test_attribute_and_evaluate_prompts_with_their_targets(llama, prompts, tmp_path, capfd):
    output = tmp_path / "lm.jsonl"
    common = ["--model", llama, "--dataset", prompts, "--methods", "alti,alti_logit,gxi_dot"]
    code, _, err = run(capfd, "attribute", *common, "--output", str(output))
    assert code == 0, err
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["target"]["token"] for r in records[:2]] == ["film", "great"]
    assert records[0]["foil"]["token"] == "plot" and records[1]["foil"] is None
    assert records[2]["target"]["id"] == records[2]["prediction"]["index"]
    assert all(r["explained"]["kind"] == "next_token" and "logit_terms" in r for r in records)
    assert all(r["special"][-1] for r in records)  # the row predicted from is never deleted

    code, fresh, err = run(capfd, "evaluate", *common, "--format", "json")
    assert code == 0 and "different quantities" in err  # a foil on one prompt only
    code, reused, _ = run(capfd, "evaluate", "--model", llama, "--attributions", str(output), "--format", "json")
    assert code == 0
    fresh, reused = json.loads(fresh), json.loads(reused)
    assert fresh["samples"] == reused["samples"] == 3
    assert fresh["protocol"]["target"] == (
        "logit difference of the target token (default: predicted) and the foil / "
        "probability of the target token (default: predicted)"
    )
    for method in ("alti", "alti_logit", "gxi_dot"):
        assert reused["methods"][method] == pytest.approx(fresh["methods"][method], abs=1e-6)
