"""What the commands share: the error users can fix, a console for tables, and loading
a saved agent."""

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from velora.models import NeuroFlow


class CLIError(Exception):
    """Bad input the user can fix; shown as one line, without a traceback."""


def console() -> Console:
    """A stdout console; 120 columns when piped, so tables do not wrap at 80."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=120 if piped else None)


def load_saved_agent(
    checkpoint_dir: Path, command: str, *, device: str | None = None
) -> "NeuroFlow":
    """The agent saved in `checkpoint_dir`, of the class its metadata names; a folder
    that is not a whole save is a `SaveError` (a `ValueError`) naming what is wrong."""
    from velora.models import NeuroFlow, NeuroFlowCT
    from velora.models.persistence import read_metadata

    metadata = read_metadata(checkpoint_dir)
    agents = {cls.__name__: cls for cls in (NeuroFlow, NeuroFlowCT)}
    if metadata.agent not in agents:
        raise CLIError(
            f"{checkpoint_dir} holds a {metadata.agent} agent; velora {command} loads "
            f"{' and '.join(agents)} agents."
        )
    return agents[metadata.agent].load(checkpoint_dir, device=device)
