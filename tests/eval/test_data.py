"""Datasets: local files with column detection, the agreement TSV, offline Hub names."""

from __future__ import annotations

import json

import pytest

from alti.data import Sample, load_dataset
from alti.errors import DatasetError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_with_header_detects_text_and_label(tmp_path):
    path = write(tmp_path / "d.csv", 'review,stars,sentiment\n"good, really",5,positive\nawful,1,negative\n')
    samples = load_dataset(path)
    assert samples == [Sample("0", "good, really", "positive"), Sample("1", "awful", "negative")]
    assert samples.name == path


def test_tsv_like_sst2_keeps_ids_and_integer_labels(tmp_path):
    path = write(tmp_path / "dev.tsv", "idx\tsentence\tlabel\n7\tit 's a charming journey .\t1\n9\tdull .\t0\n")
    assert load_dataset(path) == [
        Sample("7", "it 's a charming journey .", "1"),
        Sample("9", "dull .", "0"),
    ]


def test_headerless_tsv_takes_the_longest_column_as_text(tmp_path):
    path = write(tmp_path / "x.tsv", "1\ta long sentence here\n0\tanother long one\n")
    assert load_dataset(path) == [Sample("0", "a long sentence here", "1"), Sample("1", "another long one", "0")]


@pytest.mark.parametrize(
    "content, first_row",
    [
        ("a,b\n1,2\n", "a, b"),  # names over numbers
        ("body,stars\ngreat movie,5\nbad,1\n", "body, stars"),
        ("comment,mood\na great movie,happy\nawful from start to end,sad\n", "comment, mood"),  # a word over texts
    ],
)
def test_a_header_naming_no_text_column_is_an_error_not_a_sample(tmp_path, content, first_row):
    path = write(tmp_path / "d.csv", content)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    message = str(info.value)
    assert f"first row ({first_row}) looks like a header" in message
    assert "--text-column" in message and "--label-column" in message and "\n" not in message


def test_a_header_column_named_explicitly_is_read_as_a_header(tmp_path):
    path = write(tmp_path / "d.csv", "body,stars\ngreat movie,5\nbad,1\n")
    assert load_dataset(path, text_column="body", label_column="stars") == [
        Sample("0", "great movie", "5"),
        Sample("1", "bad", "1"),
    ]


def test_columns_given_by_index_read_the_file_as_headerless(tmp_path):
    path = write(tmp_path / "d.csv", "a,b\n1,2\n")
    assert load_dataset(path, text_column="0") == [Sample("0", "a", "b"), Sample("1", "1", "2")]


def test_headerless_errors_list_the_columns_and_the_first_row(tmp_path):
    path = write(tmp_path / "d.csv", "a,b\n1,2\n")
    with pytest.raises(
        DatasetError, match=r"no column 'body'; its columns are: 0, 1 \(no header; the first row holds: a, b\)"
    ):
        load_dataset(path, text_column="body")
    numbers = write(tmp_path / "n.csv", "1,2\n3,4\n")
    with pytest.raises(DatasetError, match=r"no text column among its columns, 0, 1 .*--text-column"):
        load_dataset(numbers)


def test_jsonl_columns_can_be_overridden_and_limited(tmp_path):
    rows = [{"body": "first text", "title": "t1", "y": "pos"}, {"body": "second", "title": "t2", "y": None}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    samples = load_dataset(path, text_column="body", label_column="y")
    assert samples == [Sample("0", "first text", "pos"), Sample("1", "second", None)]
    assert load_dataset(path, text_column="title", limit=1) == [Sample("0", "t1", None)]
    assert load_dataset(path)[0].text == "first text"  # the longest column


def test_rows_without_text_are_skipped(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\n,positive\nfine,negative\n")
    assert load_dataset(path) == [Sample("1", "fine", "negative")]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.csv", None, "does not exist"),
        ("bad.jsonl", '{"text": "a"}\n{oops\n', "line 2 is not valid JSON"),
        ("bad.csv", "text,label\nhi,1\n", "no column 'sentence'"),
        ("bin.tsv", b"\xff\xfe\x00bad", "not UTF-8"),
        ("empty.csv", "", "no rows"),
    ],
)
def test_unreadable_files_are_one_line_dataset_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(str(path), text_column="sentence" if name == "bad.csv" else None)
    assert "\n" not in str(info.value)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(DatasetError, match="sst2"):
        load_dataset("no-such-dataset")


def test_hub_datasets_fail_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError, match="local .csv/.tsv/.jsonl"):
        load_dataset("sst2")


def test_agreement_tsv_in_goldberg_format(tmp_path):
    path = write(
        tmp_path / "lgd.tsv",
        "1\tthe keys to the cabinet are here\tthe keys to the cabinet ***mask*** here\tare\tis\n"
        "0\tthe dog runs\tthe dog ***mask***\truns\trun\n",
    )
    samples = load_dataset(f"sva:{path}")
    assert samples[0] == Sample(
        "0", "the keys to the cabinet [MASK] here", "are", {"attractors": 1}, target="are", foil="is"
    )
    assert samples[1].extra == {"attractors": 0}
    assert (samples[1].target, samples[1].foil) == ("runs", "run")
    with pytest.raises(DatasetError, match="sva:PATH"):
        load_dataset("sva")


def test_agreement_tsv_with_header(tmp_path):
    path = write(tmp_path / "a.tsv", "sentence\tcorrect\twrong\nthe dogs [MASK] .\tbark\tbarks\n")
    assert load_dataset(f"sva:{path}") == [Sample("0", "the dogs [MASK] .", "bark", target="bark", foil="barks")]


def test_the_embedded_samples_are_the_default():
    samples = load_dataset()
    assert samples.name == "samples" and len(samples) > 0
    assert all(s.text.strip() and s.label in ("positive", "negative") for s in samples)
    assert len({s.id for s in samples}) == len(samples)
    assert load_dataset("samples", limit=3) == samples[:3]


def test_language_model_rows_carry_target_and_foil(tmp_path):
    path = write(
        tmp_path / "prompts.jsonl",
        '{"text": "The capital of France is", "target": " Paris", "foil": " London"}\n'
        '{"text": "One, two,", "target": 1234}\n'
        '{"text": "The sky is", "target": ""}\n',
    )
    samples = load_dataset(path)
    assert [(s.target, s.foil) for s in samples] == [(" Paris", " London"), ("id:1234", None), (None, None)]
    assert samples[0].to_dict()["target"] == " Paris"


def test_rows_without_a_usable_text_are_counted_by_reason_and_line(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [
        {"text": "a fine film", "label": "positive"},
        {"text": 12},
        {"text": None},
        {"text": ["a", "list"]},
        {"text": "   "},
        {"label": "positive"},
        {"text": "ok", "target": {"id": 1}},
        {"text": "also fine", "target": 7},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows[:4]) + "\n\n" + "\n".join(json.dumps(r) for r in rows[4:]))
    samples = load_dataset(str(path))
    assert [s.text for s in samples] == ["a fine film", "also fine"] and samples[1].target == "id:7"
    assert samples.skipped == {
        "'text' is a number": [2],
        "'text' is null": [3],
        "'text' is a list": [4],
        "'text' is empty": [6],
        "no 'text'": [7],
        "'target' is an object, not a token or an id": [8],
    }
    assert samples.skip_note().startswith(f"{path}: skipped 6 of 8 rows: 'text' is a number (line 2); ")


def test_a_csv_row_is_named_by_the_line_it_starts_on(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('text,label\n"a review\nover two lines",1\n,0\n"fine",1\n', encoding="utf-8")
    samples = load_dataset(str(path))
    assert [s.text for s in samples] == ["a review\nover two lines", "fine"]
    assert samples.skipped == {"'text' is empty": [4]}


def test_no_usable_row_is_an_error_and_the_cli_says_what_it_skipped(tmp_path, capfd):
    from alti.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": 3}\n{"text": ""}\n')
    with pytest.raises(DatasetError, match=r"no usable row: 'text' is a number \(line 1\); 'text' is empty \(line 2\)"):
        load_dataset(str(bad))
    assert main(["attribute", "--dataset", str(bad), "--methods", "alti", "-o", str(tmp_path / "out.jsonl")]) == 2
    assert "no usable row" in capfd.readouterr().err
    some = tmp_path / "some.jsonl"
    some.write_text('{"text": "a warm film"}\n{"text": null}\n')
    assert main(["attribute", "--dataset", str(some), "--methods", "alti", "-o", str(tmp_path / "out.jsonl")]) == 0
    err = capfd.readouterr().err
    assert f"alti: warning: {some}: skipped 1 of 2 rows: 'text' is null (line 2)" in err
    assert "wrote 1 records" in err


def test_answer_datasets_read_prompts_answers_segments_and_support(tmp_path):
    from alti.data import CONTEXT_TEMPLATE

    path = tmp_path / "qa.jsonl"
    rows = [
        {
            "context": "Paris is in France. Rome is in Italy.",
            "question": "Where is Rome?",
            "answer": " In Italy.",
            "support": 2,
        },
        {"prompt": "Say hi.", "answer": ""},
        {"prompt": "A cat sat. A dog ran.", "segments": [[0, 10], [11, 21]], "support": "2,1"},
        {"prompt": "bad", "support": [0]},
        {"prompt": "bad", "segments": [[5, 2]]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = load_dataset(str(path))
    first, second, third = samples
    assert first.text == CONTEXT_TEMPLATE.format(context=rows[0]["context"], question=rows[0]["question"])
    assert first.answer == " In Italy." and first.support == (2,) and first.prompted
    assert second.answer is None  # an empty answer is generated
    assert third.segments == ((0, 10), (11, 21)) and third.support == (2, 1)
    assert samples.skipped == {
        "'support' is not 1-based segment numbers": [4],
        "'segments' is not a list of [start, end] character spans": [5],
    }
