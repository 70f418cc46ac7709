"""`alti explain` on tiny checkpoints saved to disk: outputs and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

from alti import Explainer
from alti.cli import main
from tests.conftest import tiny_model, tiny_tokenizer

LONG_TEXT = " ".join(["the film was surprisingly good and the cast was great"] * 20)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Directories of tiny saved models: a classifier, an unsupported type, a masked LM, a bare encoder."""
    root = tmp_path_factory.mktemp("checkpoints")
    tokenizer = tiny_tokenizer()

    classifier, _ = tiny_model("bert")
    classifier.config.architectures = ["BertForSequenceClassification"]
    classifier.config.id2label = {0: "negative", 1: "positive"}
    classifier.config.label2id = {"negative": 0, "positive": 1}

    torch.manual_seed(0)
    opt = AutoModelForSequenceClassification.from_config(
        AutoConfig.for_model(
            "opt",
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            ffn_dim=64,
            num_attention_heads=4,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
            pad_token_id=0,
        )
    )
    opt.config.architectures = ["OPTForSequenceClassification"]

    masked = AutoModelForMaskedLM.from_config(
        AutoConfig.for_model(
            "bert",
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=66,
        )
    )
    masked.config.architectures = ["BertForMaskedLM"]
    bare = AutoModel.from_config(masked.config)
    bare.config.architectures = ["BertModel"]

    paths = {}
    for name, model in [("classifier", classifier), ("opt", opt), ("masked", masked), ("bare", bare)]:
        path = root / name
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths[name] = str(path)
    return paths


def run_cli(capfd, *argv):
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("alti: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_ansi_output(checkpoints, capfd):
    code, out, err = run_cli(
        capfd,
        "explain",
        "a gripping film",
        "--model",
        checkpoints["classifier"],
        "--methods",
        "alti,rollout",
        "--device",
        "cpu",
    )
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("prediction: ") and ("positive" in lines[0] or "negative" in lines[0])
    assert lines[1].startswith("alti ") and "gripping" in lines[1] and "[CLS]" in lines[1]
    assert lines[2].startswith("rollout ")
    assert "deep purple" in out and "alti 0.1.0" in out


def test_json_schema_with_layers(checkpoints, capfd):
    code, out, err = run_cli(
        capfd,
        "explain",
        "a gripping film",
        "--model",
        checkpoints["classifier"],
        "--methods",
        "alti,rollout",
        "--format",
        "json",
        "--layers",
    )
    assert code == 0 and err == ""
    doc = json.loads(out)
    n = len(doc["tokens"])
    assert doc["tokens"][0] == "[CLS]" and doc["tokens"][-1] == "[SEP]"
    assert set(doc["prediction"]) >= {"label", "index", "probabilities"}
    assert doc["prediction"]["label"] in ("negative", "positive")
    assert abs(sum(doc["prediction"]["probabilities"]) - 1) < 1e-9
    assert list(doc["attributions"]) == ["alti", "rollout"]
    assert all(len(v) == n for v in doc["attributions"].values())
    assert len(doc["layers"]["alti"]) == 2 and len(doc["layers"]["alti"][0]) == n
    assert doc["version"] == "0.1.0" and doc["model"] and doc["settings"]["alti"]


def test_stdin(checkpoints, capfd, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("a gripping film\n"))
    code, out, err = run_cli(capfd, "explain", "-", "--model", checkpoints["classifier"], "-f", "json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["text"] == "a gripping film"
    assert doc["tokens"] == ["[CLS]", "a", "gripping", "film", "[SEP]"]


def test_svg_output_file(checkpoints, capfd, tmp_path):
    target = tmp_path / "figure.svg"
    code, out, err = run_cli(
        capfd, "explain", "a gripping film", "--model", checkpoints["classifier"], "-o", str(target)
    )
    assert code == 0 and out == "" and err == ""
    root = ET.fromstring(target.read_bytes())
    assert root.tag.endswith("svg")
    assert os.listdir(tmp_path) == ["figure.svg"]


@pytest.mark.parametrize(
    "suffix, marker",
    [(".html", "<!DOCTYPE html>"), (".tex", "\\colorbox[RGB]"), (".txt", "\x1b["), (".ansi", "\x1b[")],
)
def test_output_format_follows_suffix(checkpoints, capfd, tmp_path, suffix, marker):
    target = tmp_path / f"out{suffix}"
    code, out, err = run_cli(
        capfd,
        "explain",
        "a gripping film",
        "--model",
        checkpoints["classifier"],
        "--methods",
        "alti,norm_rollout",
        "-o",
        str(target),
    )
    assert code == 0 and out == "" and err == ""
    written = target.read_text(encoding="utf-8")
    assert marker in written and "norm_rollout" in written.replace("\\_", "_")


@pytest.mark.parametrize("name", ["out.pdf", "out.PNG", "out"])
def test_an_output_suffix_of_no_format_is_refused(checkpoints, capfd, tmp_path, name):
    target = tmp_path / name
    code, out, err = run_cli(capfd, "explain", "a film", "--model", checkpoints["classifier"], "-o", str(target))
    assert_one_line_error(code, err, ".json", ".svg", ".tex", ".txt", "--format")
    assert not target.exists() and out == ""


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text(checkpoints, capfd, text):
    code, _, err = run_cli(capfd, "explain", text, "--model", checkpoints["classifier"])
    assert_one_line_error(code, err, "empty")


def test_empty_stdin(checkpoints, capfd, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(" \n"))
    code, _, err = run_cli(capfd, "explain", "-", "--model", checkpoints["classifier"])
    assert_one_line_error(code, err, "empty")


@pytest.mark.parametrize("source", ["argument", "stdin"])
@pytest.mark.parametrize("text", ["caf\udce9 au lait", "\udcff\udcfe\x00 bytes"])
def test_text_that_is_not_utf8_gets_one_line(checkpoints, capfd, monkeypatch, source, text):
    """Bytes that are not UTF-8 reach Python as lone surrogates (argv, or stdin in a C locale)."""
    import io

    argv = ["explain", text, "--model", checkpoints["classifier"]]
    if source == "stdin":
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))
        argv[1] = "-"
    code, _, err = run_cli(capfd, *argv)
    bad = ord(next(c for c in text if 0xDC80 <= ord(c) <= 0xDCFF)) - 0xDC00
    assert_one_line_error(code, err, "not valid UTF-8", f"byte 0x{bad:02x}", "iconv")


def test_the_api_refuses_text_that_is_not_unicode(checkpoints):
    from alti.errors import InputError

    explainer = Explainer.from_pretrained(checkpoints["classifier"], device="cpu")
    with pytest.raises(InputError, match="not valid UTF-8"):
        explainer.explain("caf\udce9")


def test_long_text_is_truncated_with_a_warning(checkpoints, capfd):
    code, out, err = run_cli(capfd, "explain", LONG_TEXT, "--model", checkpoints["classifier"], "-f", "json")
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("alti: warning: the text is 202 tokens, more than the 64")
    doc = json.loads(out)
    assert doc["truncated"] is True
    assert f"keeping its start, {len(doc['tokens'])} tokens (the model's own maximum)" in lines[0]
    assert doc["tokens"][-1] == "[SEP]"


def test_unknown_method_lists_valid_ones(checkpoints, capfd):
    code, _, err = run_cli(capfd, "explain", "fine", "--model", checkpoints["classifier"], "--methods", "alti,nope")
    assert_one_line_error(code, err, "'nope'", "alti", "rollout")


def test_unsupported_model_type_lists_supported(checkpoints, capfd):
    code, _, err = run_cli(capfd, "explain", "fine", "--model", checkpoints["opt"])
    assert_one_line_error(code, err, "'opt'", "bert", "deberta-v2", "gpt2", "llama", "--adapter")


def test_checkpoint_without_a_head(checkpoints, capfd):
    code, _, err = run_cli(capfd, "explain", "fine", "--model", checkpoints["bare"])
    assert_one_line_error(code, err, "BertModel", "ForSequenceClassification", "causal LM")


def test_masked_lm_needs_one_mask(checkpoints, capfd):
    code, _, err = run_cli(capfd, "explain", "fine", "--model", checkpoints["masked"], "--target", "a", "--foil", "the")
    assert_one_line_error(code, err, "0 mask tokens")


def test_missing_local_model(capfd, tmp_path):
    code, _, err = run_cli(capfd, "explain", "fine", "--model", str(tmp_path / "nothing-here"))
    assert_one_line_error(code, err)


def test_unwritable_output(checkpoints, capfd, tmp_path):
    target = tmp_path / "missing" / "out.json"
    code, _, err = run_cli(capfd, "explain", "fine", "--model", checkpoints["classifier"], "-o", str(target))
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run_cli(capfd, "explain", "fine", "--model", checkpoints["classifier"], "-o", str(tmp_path))
    assert_one_line_error(code, err, "directory")


def test_layers_need_json(checkpoints, capfd):
    code, _, err = run_cli(capfd, "explain", "fine", "--model", checkpoints["classifier"], "--layers")
    assert_one_line_error(code, err, "--format json")


def test_usage_errors_are_one_line(capfd):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "fine", "--format", "pdf"])
    _, err = capfd.readouterr()
    assert_one_line_error(exc.value.code, err, "--format", "alti explain --help")


@pytest.mark.subprocess
def test_unreachable_hub_name_offline_end_to_end(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from alti.cli import main; raise SystemExit(main())",
            "explain",
            "fine",
            "--model",
            "no-such-org/no-such-model",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert_one_line_error(proc.returncode, proc.stderr, "no-such-org/no-such-model")
    assert proc.stdout == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(checkpoints, capfd):
    code, _, err = run_cli(capfd, "explain", "fine", "--model", checkpoints["classifier"], "--device", "cuda")
    assert_one_line_error(code, err, "--device cpu")


@pytest.mark.parametrize("text", ["\u200b\u200b", "\x00\x01"])
def test_text_without_tokens_is_empty(checkpoints, capfd, text):
    code, out, err = run_cli(capfd, "explain", text, "--model", checkpoints["classifier"])
    assert_one_line_error(code, err, "the text is empty")
    assert out == ""


def test_attribute_names_the_sample_without_tokens(checkpoints, capfd, tmp_path):
    data = tmp_path / "reviews.jsonl"
    rows = [{"id": "r1", "text": "a fine film"}, {"id": "r2", "text": "\u200b\u200b"}, {"id": "r3", "text": "dull"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, _, err = run_cli(
        capfd,
        "attribute",
        "--model",
        checkpoints["classifier"],
        "--dataset",
        str(data),
        "--methods",
        "alti",
        "--output",
        str(tmp_path / "out.jsonl"),
    )
    assert_one_line_error(code, err, "sample r2: the text is empty")


@pytest.mark.parametrize(
    "content, fragments",
    [
        ("a,b\n1,2\n", ["first row (a, b) looks like a header", "--text-column", "--label-column"]),
        ("body,stars\na fine film,5\ndull,1\n", ["(body, stars)", "--text-column"]),
    ],
)
def test_attribute_refuses_a_header_without_a_text_column(checkpoints, capfd, tmp_path, content, fragments):
    data = tmp_path / "data.csv"
    data.write_text(content, encoding="utf-8")
    output = tmp_path / "out.jsonl"
    code, _, err = run_cli(
        capfd,
        "attribute",
        "--model",
        checkpoints["classifier"],
        "--dataset",
        str(data),
        "--methods",
        "alti",
        "--output",
        str(output),
    )
    assert_one_line_error(code, err, *fragments)
    assert not output.exists()


def test_attribute_reads_the_named_header_column(checkpoints, capfd, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("body,stars\na fine film,5\ndull,1\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    code, _, err = run_cli(
        capfd,
        "attribute",
        "--model",
        checkpoints["classifier"],
        "--dataset",
        str(data),
        "--methods",
        "alti",
        "--text-column",
        "body",
        "--label-column",
        "stars",
        "--output",
        str(output),
    )
    assert code == 0, err
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(r["text"], r["label"]) for r in records] == [("a fine film", "5"), ("dull", "1")]


@pytest.mark.subprocess
@pytest.mark.slow
def test_python_m_alti_is_the_command(checkpoints, tmp_path):
    """``python -m alti`` runs the same command where the ``alti`` script is not installed."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "alti",
            "explain",
            "--model",
            str(checkpoints["classifier"]),
            "--device",
            "cpu",
            "--methods",
            "rollout",
            "--format",
            "json",
            "the plot is thin",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["tokens"] == ["[CLS]", "the", "plot", "is", "thin", "[SEP]"]
    missing = subprocess.run(
        [sys.executable, "-m", "alti", "explain", "--model", str(tmp_path / "none"), "x"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode != 0 and missing.stderr.startswith("alti: error:") and "Traceback" not in missing.stderr


def test_the_version_is_the_installed_package_metadata(capsys):
    from importlib import metadata

    import alti

    assert alti.__version__ == metadata.version("alti")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"alti {metadata.version('alti')}"
