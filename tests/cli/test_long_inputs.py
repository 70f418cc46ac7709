"""Long inputs: truncated before any work and said at once, a default cap for causal LMs that
a CPU explains in reasonable time, and progress on a long explanation."""

from __future__ import annotations

import json

import pytest

from alti import Explainer
from alti import explainer as explainer_module
from alti.cli import explain as explain_cli
from alti.cli import main
from tests.conftest import tiny_pre_ln

WORDS = " ".join(["the film was good and the cast was great"] * 30)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    model, tokenizer = tiny_pre_ln("gpt2", "causal_lm")
    path = tmp_path_factory.mktemp("lm")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_a_causal_lm_is_capped_and_keeps_the_end(monkeypatch):
    model, tokenizer = tiny_pre_ln("gpt2", "causal_lm")
    assert Explainer(model, tokenizer).max_length == min(64, explainer_module.LM_MAX_TOKENS)
    monkeypatch.setattr(explainer_module, "LM_MAX_TOKENS", 16)
    capped = Explainer(model, tokenizer)
    assert (capped.max_length, capped.model_max_length) == (16, 64)
    total, kept = capped.measure(WORDS)
    assert (total, kept) == (len(tokenizer(WORDS)["input_ids"]), 16)
    e = capped.explain(WORDS)
    assert e.truncated and len(e.tokens) == 16
    assert e.input_ids[1:] == tokenizer(WORDS)["input_ids"][-15:]  # the start token, then the prompt's end
    assert Explainer(model, tokenizer, max_tokens=40).max_length == 40
    with pytest.raises(Exception, match="max_tokens must be at least 2"):
        Explainer(model, tokenizer, max_tokens=1)


def test_the_truncation_is_said_before_any_work(lm_dir, capfd, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt  # the explanation never runs: the warning must already be out

    monkeypatch.setattr(Explainer, "explain", fail)
    assert main(["explain", WORDS, "--model", lm_dir, "--max-tokens", "12", "--device", "cpu"]) == 130
    err = capfd.readouterr().err.splitlines()
    assert err[0].startswith("alti: warning: the text is ")
    assert (
        "more than the 12 explained; keeping its end, 12 tokens (--max-tokens raises it, up to the model's 64)"
        in err[0]
    )
    assert err[1] == "alti: interrupted"


def test_max_tokens_reaches_the_explanation(lm_dir, capfd):
    assert main(["explain", WORDS, "--model", lm_dir, "--max-tokens", "10", "-f", "json", "--device", "cpu"]) == 0
    out, err = capfd.readouterr()
    assert len(json.loads(out)["tokens"]) == 10 and "keeping its end, 10 tokens" in err


def test_progress_names_the_layers_done(lm_dir, monkeypatch):
    seen = []
    explainer = Explainer.from_pretrained(lm_dir, device="cpu")
    explainer.on_progress = lambda done, layers: seen.append((done, layers))
    explainer.explain("the film was good", methods=["alti", "alti_logit"])
    assert seen == [(1, 2), (2, 2)]

    class Status:
        lines: list[str] = []

        def update(self, text):
            self.lines.append(text)

    status = Status()
    report = explain_cli.layer_progress(status, "Explaining with alti ...")
    report(1, 30)
    assert status.lines[0].startswith("Explaining with alti ... layer 1 of 30 (")


def test_without_a_terminal_progress_waits_a_few_seconds(capsys, monkeypatch):
    clock = iter([100.0, 101.0, 103.5, 104.0, 108.6])
    monkeypatch.setattr(explain_cli.time, "monotonic", lambda: next(clock))
    report = explain_cli.layer_progress(None, "Explaining ...")
    for done in (1, 2, 3, 4):
        report(done, 4)
    assert capsys.readouterr().err.splitlines() == [
        "alti: Explaining ... layer 2 of 4 (4 s)",
        "alti: Explaining ... layer 4 of 4 (9 s)",
    ]
