"""The user guide (`docs/*.md`): every ```python block runs.

A page's blocks run in order in one namespace, as a reader following the page would run
them, in a fresh working directory. Blocks fenced as ```bash or ```text are shown, not
run. Comet examples log offline into the temp dir, and nothing may open a connection.
"""

import os
import socket
from pathlib import Path

import pytest
from markdown_blocks import python_blocks

# comet_ml turns on Sentry error reports (network) for a random half of its imports;
# it reads this setting once, at import.
os.environ["COMET_ERROR_TRACKING_ENABLE"] = "false"

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.glob("*.md"))
#: Pages about the command line only: their examples are shell commands.
CLI_PAGES = {"cli.md"}


def test_the_guide_has_pages_with_examples():
    names = {page.name for page in PAGES}
    assert "index.md" in names
    assert len(names) >= 8
    for page in PAGES:
        if page.name not in CLI_PAGES:
            assert python_blocks(page.read_text()), f"{page.name} has no ```python block"


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a docs example")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield
    assert attempts == [], "a docs example tried to reach the network"


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_python_block_of_the_page_runs(page, tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    for name in ("COMET_API_KEY", "COMET_MODE", "COMET_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path / "comet"))
    monkeypatch.setenv("COMET_AUTO_LOG_ENV_DETAILS", "false")
    monkeypatch.setenv("COMET_ERROR_TRACKING_ENABLE", "false")

    namespace: dict = {"__name__": "__docs__"}
    for index, block in enumerate(python_blocks(page.read_text())):
        try:
            exec(compile(block, f"docs/{page.name}[block {index}]", "exec"), namespace)
        except Exception as error:
            pytest.fail(f"docs/{page.name}, python block {index} failed: {error!r}\n\n{block}")
