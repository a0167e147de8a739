"""A real IPython shell with ``export_widgets`` loaded, for the magic's tests (terminal-style: text views)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config


@contextmanager
def magic_shell() -> Iterator[InteractiveShell]:
    """The shell, with ``%load_ext export_widgets`` done; ``%unload_ext`` (which stops live watches) at the end."""
    config = Config()
    config.HistoryAccessor.enabled = False  # no sqlite input history: many shells, no "too many open files"
    ip = InteractiveShell(config=config)
    ip.run_line_magic("load_ext", "export_widgets")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "export_widgets")
