"""The sample browser: a filter box over the dataset's samples with gold and predicted labels."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input

from alti_tui.models import ListedSample
from alti_tui.widgets.sample_list import SampleList

#: Below this width the labels are abbreviated to as little as one letter.
COMPACT_WIDTH = 34


def abbreviations(labels: list[str], shortest: int = 3) -> dict[str, str]:
    """Short names for labels: the shortest prefix (``shortest`` letters or more) that tells them apart."""
    for length in range(shortest, max((len(label) for label in labels), default=shortest) + 1):
        short = {label: label[:length] for label in labels}
        if len(set(short.values())) == len(labels):
            return short
    return {label: label for label in labels}


def short_token(token: str, compact: bool) -> str:
    """A predicted token in the list, quoted (``' Paris'``), shorter when the list is narrow."""
    shown, longest = repr(token), 8 if compact else 12
    return shown if len(shown) <= longest else shown[: longest - 1] + "…"


class SampleBrowser(Vertical):
    """``Chosen(index)`` is posted when the highlighted sample changes.

    For a classifier each sample shows gold → predicted class; for a language
    model (``tokens``: its targets are vocabulary tokens) the sample's own target
    (when the data gives one) → the predicted token, ✓ where they agree.

    ``sample_order(filter_text)`` (set by the app for a run file) gives the samples listed, in
    order; without it the list is the dataset order, filtered by text.  ``note`` (the
    order and filters in force) is shown on the bottom border.
    """

    ALLOW_MAXIMIZE = True

    DEFAULT_CSS = """
    SampleBrowser { height: 1fr; border: round $primary-darken-2; border-title-color: $text; }
    SampleBrowser:focus-within { border: round $accent; }
    SampleBrowser Input { height: 3; }
    """

    BINDINGS = [Binding("escape", "leave_filter", "back to the list", show=False)]

    class Chosen(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples: list[ListedSample] = []
        self.predicted: list[str | None] = []
        self.shown: list[int] = []
        self.short: dict[str, str] = {}
        self.names: list[str] = []
        #: the model's labels (a classifier's), which gold labels are checked against
        self.labels: list[str] = []
        self.compact = False
        self.tokens = False
        self.sample_order: Callable[[str], list[int]] | None = None
        self.note = ""
        self.border_title = "Samples"

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter (f)", id="filter")
        yield SampleList(self._prompt_at, id="sample-list")

    @property
    def filter_text(self) -> str:
        return self.query_one("#filter", Input).value

    @property
    def option_list(self) -> SampleList:
        return self.query_one("#sample-list", SampleList)

    def _prompt_at(self, position: int) -> Text:
        """The row at ``position`` of the list as shown."""
        return self._prompt(self.shown[position])

    def set_samples(
        self, samples: list[ListedSample], labels: list[str], tokens: bool = False, predicted: list[str] | None = None
    ) -> None:
        """The samples listed, with their predictions when known already (a run file's)."""
        self.tokens = tokens
        self.samples = list(samples)
        self.labels = list(labels)
        self.names = sorted({*labels, *(s.label for s in samples if s.label is not None)})
        self.short = abbreviations(self.names, 1 if self.compact else 3)
        self.predicted = [None] * len(samples) if predicted is None else list(predicted)
        self._rebuild()

    def rearrange(self, note: str = "") -> None:
        """List the samples again as ``sample_order`` orders them now, keeping the highlighted one."""
        self.note = note
        self._rebuild(keep=self.current)

    def on_resize(self) -> None:
        compact = self.size.width < COMPACT_WIDTH
        if compact != self.compact:
            self.compact = compact
            self.short = abbreviations(self.names, 1 if compact else 3)
            if self.samples:
                self._rebuild(keep=self.current)

    def set_predictions(self, start: int, labels: list[str]) -> None:
        """Mark a batch of predictions in place (rebuilding the list would redraw every sample)."""
        self.predicted[start : start + len(labels)] = labels
        self.option_list.invalidate()
        self._update_title()

    @property
    def current(self) -> int | None:
        highlighted = self.option_list.highlighted
        if highlighted is None or highlighted >= len(self.shown):
            return None
        return self.shown[highlighted]

    def _gold(self, sample: ListedSample) -> str | None:
        """What the prediction is checked against: the label, or a language model's target."""
        if not self.tokens:
            return sample.label
        if sample.target is None or sample.target.startswith("id:"):
            return None
        return sample.target

    def _wrong(self, predicted: str | None, gold: str | None) -> bool | None:
        """Whether a prediction misses the gold (None when either is unknown)."""
        if predicted is None or gold is None:
            return None
        if not self.tokens:  # a gold label the model does not have is not checked
            return None if self.labels and gold not in self.labels else predicted != gold
        return predicted.strip() != gold.strip()

    def foreign_labels(self) -> list[str]:
        """The samples' gold labels that are none of the model's (never marked ✓ or ✗)."""
        if self.tokens or not self.labels:
            return []
        return sorted({s.label for s in self.samples if s.label is not None and s.label not in self.labels})

    def _prompt(self, index: int) -> Text:
        sample, predicted = self.samples[index], self.predicted[index]
        gold_value = self._gold(sample)
        wrong = self._wrong(predicted, gold_value)
        if predicted is None:
            mark, style = "·", "dim"
        elif wrong is None:
            mark, style = " ", ""
        elif not wrong:
            mark, style = "✓", "green"
        else:
            mark, style = "✗", "bold red"
        text = Text(f"{mark} ", style=style)
        if not self.tokens:
            gold = self.short.get(gold_value, "–") if gold_value is not None else "–"
            guess = self.short.get(predicted, predicted) if predicted is not None else "…"
        else:  # a token: the target only where the prediction misses it
            gold = short_token(gold_value, self.compact) if wrong else ""
            guess = short_token(predicted, self.compact) if predicted is not None else "…"
            if wrong is False:
                text.append(f"{guess} ", style=style)
                text.append(" ".join(sample.text.split()))
                return text
        text.append(f"{gold}→{guess} ", style=style or "dim")
        text.append(" ".join(sample.text.split()))
        return text

    def _rebuild(self, keep: int | None = None) -> None:
        if self.sample_order is not None:
            self.shown = self.sample_order(self.filter_text)
        else:
            needle = self.filter_text.lower().strip()
            self.shown = [i for i, s in enumerate(self.samples) if needle in s.text.lower()]
        options = self.option_list
        if keep is not None and keep in self.shown:
            options.reset(len(self.shown), self.shown.index(keep))
        else:
            options.reset(len(self.shown), None)
            if self.shown:
                options.highlighted = 0
        self._update_title()

    def _update_title(self) -> None:
        wrong = sum(1 for s, p in zip(self.samples, self.predicted) if self._wrong(p, self._gold(s)))
        filtered = len(self.shown) != len(self.samples) or self.filter_text
        shown = f"{len(self.shown)}/{len(self.samples)}" if filtered else f"{len(self.samples)}"
        self.border_title = Text(f"Samples {shown} · ✗ {wrong}")
        # the order and filters in force, on the bottom border: the top one has no room left for them
        self.border_subtitle = Text(self.note) if self.note else None

    def step(self, delta: int) -> None:
        options = self.option_list
        if not self.shown:
            return
        current = options.highlighted if options.highlighted is not None else -delta
        options.highlighted = max(0, min(len(self.shown) - 1, current + delta))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._rebuild(keep=self.current)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.option_list.focus()

    def action_leave_filter(self) -> None:
        self.option_list.focus()

    def on_sample_list_highlighted(self, event: SampleList.Highlighted) -> None:
        event.stop()
        self.post_message(self.Chosen(self.shown[event.position]))
