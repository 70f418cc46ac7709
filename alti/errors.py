"""Errors that the CLI and the TUI show as one line, never as a traceback.

Every message names the problem and, where there is one, the fix.
"""


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
