"""Errors that the CLI and the TUI show as one line, never as a traceback.

Every message names the problem and, where there is one, the fix.
"""


def check_utf8(text: str, what: str) -> None:
    """Refuse text decoded from bytes that were not UTF-8 (Python keeps each bad byte as a lone
    surrogate), naming the first bad byte and the fix."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        byte = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"character U+{code:04X}"
        raise InputError(
            f"{what} is not valid UTF-8 ({byte} at character {error.start + 1}); "
            "convert it first, e.g. iconv -f latin1 -t utf-8"
        ) from None


class AltiError(Exception):
    """Base class: a user-facing problem with a one-line message."""


class InputError(AltiError):
    """Bad input text, e.g. empty or whitespace only."""


class UnknownMethodError(AltiError):
    """A method name that is not registered; the message lists the valid ones."""


class UnsupportedModelError(AltiError):
    """A model type without an adapter, or a checkpoint without the head we need."""


class ModelLoadError(AltiError):
    """A model or tokenizer that cannot be loaded (offline hub, bad path, ...)."""


class DatasetError(AltiError):
    """A dataset that cannot be read or reached."""
