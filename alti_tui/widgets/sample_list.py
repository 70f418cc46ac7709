"""A list of one-line rows that draws only the rows in view.

Textual's ``OptionList`` measures every option when the list is filled, which takes
seconds for the 10,000 samples of a dataset run; this list asks ``prompt(position)`` for
the rows it paints, so filling or re-sorting it costs nothing until they are drawn.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


class SampleList(ScrollView, can_focus=True, inherit_bindings=False):
    """``Highlighted(position)`` is posted when the highlighted row changes (by keys, a click
    or by setting :attr:`highlighted`), unless it was set with :meth:`reset`.

    Its keys are its own: the rows never scroll sideways, so ← and → are left to the screen."""

    DEFAULT_CSS = """
    SampleList { height: 1fr; padding: 0 1; }
    SampleList > .sample-list--highlight {
        background: $block-cursor-blurred-background; text-style: $block-cursor-blurred-text-style;
    }
    SampleList:focus > .sample-list--highlight {
        color: $block-cursor-foreground; background: $block-cursor-background; text-style: $block-cursor-text-style;
    }
    """
    COMPONENT_CLASSES = {"sample-list--highlight"}
    BINDINGS = [
        Binding("up", "move(-1)", "up", show=False, tooltip="previous sample in the list"),
        Binding("down", "move(1)", "down", show=False, tooltip="next sample in the list"),
        Binding("pageup", "page(-1)", "page up", show=False, tooltip="a page up the list"),
        Binding("pagedown", "page(1)", "page down", show=False, tooltip="a page down the list"),
        Binding("home", "first", "first", show=False, tooltip="first sample of the list"),
        Binding("end", "last", "last", show=False, tooltip="last sample of the list"),
    ]

    highlighted: reactive[int | None] = reactive(None)

    class Highlighted(Message):
        def __init__(self, position: int) -> None:
            super().__init__()
            self.position = position

    def __init__(self, prompt: Callable[[int], Text], **kwargs) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.count = 0
        self._quiet = False
        #: Painted rows by (row, width, highlighted); a switch repaints two rows, not the list.
        self._lines: dict[tuple[int, int, bool], Strip] = {}
        self._styles: tuple[Style, Style] | None = None

    def reset(self, count: int, highlighted: int | None) -> None:
        """``count`` rows (their prompts may all have changed), ``highlighted`` without a message."""
        self.count = count
        self._lines.clear()
        self.virtual_size = Size(self.virtual_size.width, count)
        self._quiet = True
        self.highlighted = highlighted
        self._quiet = False
        self.refresh()

    def validate_highlighted(self, position: int | None) -> int | None:
        if position is None or self.count == 0:
            return None
        return max(0, min(self.count - 1, position))

    def invalidate(self) -> None:
        """The rows' prompts changed (predictions arrived): paint them anew."""
        self._lines.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._lines.clear()

    def on_focus(self) -> None:
        self.notify_style_update()

    def on_blur(self) -> None:
        self.notify_style_update()

    def watch_highlighted(self, old: int | None, new: int | None) -> None:
        if new is None:
            return
        top = int(self.scroll_y)
        self._scroll_to_row(new)
        if int(self.scroll_y) != top or old is None:
            self.refresh()
        else:
            for row in (old, new):
                self.refresh(Region(0, row - top, self.size.width, 1))
        if not self._quiet and new != old:
            self.post_message(self.Highlighted(new))

    def _scroll_to_row(self, row: int) -> None:
        height = self.scrollable_content_region.height or 1
        top = int(self.scroll_y)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False, immediate=True)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        row = int(self.scroll_y) + y
        if row >= self.count or width <= 0:
            return Strip.blank(width, self.rich_style)
        key = (row, width, row == self.highlighted)
        line = self._lines.get(key)
        if line is None:
            if self._styles is None:
                base = self.rich_style
                self._styles = (base, base + self.get_component_rich_style("sample-list--highlight"))
            style = self._styles[row == self.highlighted]
            text = self.prompt(row).copy()
            text.no_wrap = True
            text.truncate(width, overflow="ellipsis", pad=True)
            line = Strip(text.render(self.app.console)).crop_extend(0, width, style).apply_style(style)
            if len(self._lines) > 4 * max(64, self.size.height):
                self._lines.clear()
            self._lines[key] = line
        return line

    def action_move(self, step: int) -> None:
        if self.count:
            self.highlighted = step if self.highlighted is None else self.highlighted + step

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, (self.scrollable_content_region.height or 1) - 1))

    def action_first(self) -> None:
        self.highlighted = 0

    def action_last(self) -> None:
        self.highlighted = self.count - 1

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None:
            self.highlighted = int(self.scroll_y) + offset.y
