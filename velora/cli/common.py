"""What the commands share: the error users can fix and a console for tables."""

import os
import sys

from rich.console import Console


class CLIError(Exception):
    """Bad input the user can fix; shown as one line, without a traceback."""


def console() -> Console:
    """A stdout console; 120 columns when piped, so tables do not wrap at 80."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=120 if piped else None)
