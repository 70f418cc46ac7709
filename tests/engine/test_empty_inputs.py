"""Texts that leave no token after tokenization are refused like empty texts, not explained as [CLS] [SEP]."""

from __future__ import annotations

import pytest
from tokenizers import processors
from transformers import PreTrainedTokenizerFast

from alti import Explainer
from alti.errors import InputError
from tests.conftest import tiny_model, tiny_pre_ln, tiny_tokenizer

NO_TOKENS = ["\u200b\u200b", "\x00\x01", "\u200b \x07"]


@pytest.fixture(scope="module")
def classifier():
    return Explainer(*tiny_model("bert"))


@pytest.mark.parametrize("text", NO_TOKENS)
def test_no_token_texts_get_the_empty_text_error(classifier, text):
    assert classifier.tokenizer(text)["input_ids"] == [101, 102]  # only [CLS] [SEP]: nothing to explain
    with pytest.raises(InputError, match="^the text is empty; give some words to explain$"):
        classifier.explain(text)
    with pytest.raises(InputError, match="the text is empty"):
        classifier.encode(text)


def test_a_batch_with_a_no_token_text_is_refused(classifier):
    with pytest.raises(InputError, match="the text is empty"):
        classifier.explain_batch(["a fine film", "\u200b"], methods=["alti"])


def test_predictions_skip_no_token_texts_when_asked(classifier):
    first, second = classifier.predictions(["a fine film", "\x00\x01"], skip_errors=True)
    assert first is not None and second is None


def test_the_mask_token_alone_is_still_a_text():
    ex = Explainer(*tiny_model("bert"))
    assert ex.encode("[MASK]") == [101, 103, 102]


def test_a_decoder_without_special_tokens_refuses_an_empty_token_list():
    model, _ = tiny_pre_ln("llama")
    backend = tiny_tokenizer().backend_tokenizer.__class__.from_str(tiny_tokenizer().backend_tokenizer.to_str())
    backend.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")
    ex = Explainer(model, tokenizer)
    assert tokenizer("\u200b")["input_ids"] == []
    assert ex.encode("the cat") == tokenizer("the cat")["input_ids"]
    with pytest.raises(InputError, match="the text is empty"):
        ex.explain("\u200b", methods=["alti"])
