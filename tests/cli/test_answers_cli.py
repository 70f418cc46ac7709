"""``alti explain PROMPT --answer TEXT | --generate N [--chat] [--segments KIND]``."""

from __future__ import annotations

import json

import pytest

from alti.cli import main
from tests.conftest import tiny_model, tiny_pre_ln

PROMPT = "the film was good. the cast was great!"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    made = {}
    for name, (model, tokenizer) in {
        "lm": tiny_pre_ln("gpt2", "causal_lm"),
        "classifier": tiny_model("bert"),
    }.items():
        path = tmp_path_factory.mktemp(name)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        made[name] = str(path)
    return made


def run(capfd, *argv):
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def test_the_json_of_an_answer_has_its_steps_and_segments(dirs, capfd):
    code, out, err = run(
        capfd,
        "explain",
        PROMPT,
        "--model",
        dirs["lm"],
        "--answer",
        " it was fun",
        "--methods",
        "alti,alti_logit",
        "--segments",
        "sentences",
        "-f",
        "json",
    )
    assert code == 0, err
    doc = json.loads(out)
    answer = doc["answer"]
    start, k = answer["start"], len(answer["ids"])
    assert answer["text"] == " it was fun" and len(answer["tokens"]) == start + k
    assert [len(step) for step in doc["steps"]["alti_logit"]] == [start + i for i in range(k)]
    assert len(doc["attributions"]["alti"]) == start + k - 1
    assert [s["text"] for s in doc["segments"]] == ["the film was good.", "the cast was great!"]
    assert set(doc["segments"][0]["scores"]) == {"alti", "alti_logit"}
    assert doc["logit_terms"]["identity"].endswith("each summed over the answer's steps")


def test_per_step_adds_the_gradient_methods_steps(dirs, capfd):
    argv = [
        "explain",
        PROMPT,
        "--model",
        dirs["lm"],
        "--answer",
        " it was fun",
        "--methods",
        "alti,gxi_dot",
        "-f",
        "json",
    ]
    code, out, err = run(capfd, *argv)
    assert code == 0, err
    assert list(json.loads(out)["steps"]) == ["alti"]
    code, out, err = run(capfd, *argv, "--per-step")
    assert code == 0, err
    doc = json.loads(out)
    start = doc["answer"]["start"]
    assert sorted(doc["steps"]) == ["alti", "gxi_dot"]
    assert [len(step) for step in doc["steps"]["gxi_dot"]] == [start + i for i in range(len(doc["answer"]["ids"]))]


def test_a_generated_answer_in_the_terminal(dirs, capfd):
    code, out, err = run(capfd, "explain", PROMPT, "--model", dirs["lm"], "--generate", "3", "--segments", "sentences")
    assert code == 0, err
    assert out.startswith("answer: '") and "-token prompt)" in out and "segment" in out


@pytest.mark.parametrize(
    "extra, model, message",
    [
        (["--answer", " yes"], "classifier", "explain a causal LM's answer"),
        (["--generate", "0"], "lm", "at least 1 token"),
        (["--answer", " yes", "--chat"], "lm", "no chat template; drop --chat"),
        (["--segments", "lines"], "lm", "go with an answer"),
        (["--per-step"], "lm", "go with an answer"),
        (["--answer", " yes", "--target", " no"], "lm", "--target names one next token"),
        (["--answer", "   "], "lm", "tokenizes to nothing"),
    ],
)
def test_bad_answer_options_are_one_line(dirs, capfd, extra, model, message):
    code, _, err = run(capfd, "explain", PROMPT, "--model", dirs[model], *extra)
    assert code == 2 and err.count("\n") == 1 and message in err, err
