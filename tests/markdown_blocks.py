"""Reading the ```python blocks out of Markdown pages, for the docs tests."""

import re


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown page, dedented out of lists and admonitions."""
    blocks = []
    for match in re.finditer(r"^([ \t]*)```python[ \t]*\n(.*?)^\1```", text, re.S | re.M):
        indent = match.group(1)
        lines = match.group(2).splitlines()
        blocks.append("\n".join(line.removeprefix(indent) for line in lines))
    return blocks
