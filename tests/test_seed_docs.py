"""The user's callbacks page (`shared/seeds/callbacks.md`): every snippet runs as written.

The page's Python blocks run in order in one namespace, as a reader following the page
would run them. One block uses `...` as a placeholder for "your usual arguments"
(`model.train(..., callbacks=callbacks)`) and cannot run literally; there, and only
there, the placeholder becomes the batch size of the page's first snippet.
"""

from pathlib import Path

import pytest
from markdown_blocks import python_blocks

SEED_PAGE = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "callbacks.md"
PLACEHOLDER_CALL = "model.train(..., callbacks=callbacks)"


@pytest.mark.slow
@pytest.mark.skipif(not SEED_PAGE.exists(), reason="shared/ is not beside the checkout")
def test_every_snippet_of_the_callbacks_page_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path / "comet"))
    blocks = python_blocks(SEED_PAGE.read_text())
    assert len(blocks) >= 6, "the page's snippets were not all found"
    assert sum(PLACEHOLDER_CALL in block for block in blocks) == 1

    namespace: dict = {}
    for index, block in enumerate(blocks):
        code = block.replace(PLACEHOLDER_CALL, "model.train(128, callbacks=callbacks)")
        try:
            exec(compile(code, f"{SEED_PAGE.name}[block {index}]", "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            pytest.fail(f"block {index} of {SEED_PAGE.name} failed: {error!r}\n{block}")

    # The first snippet stopped early, and the combined one wrote checkpoints.
    model = namespace["model"]
    assert model.episodes_done < 10_000
    saves = Path("checkpoints", "agent", "saves")
    assert (saves / "completed.json").exists()
    assert (saves / "InvertedPendulum_final" / "metadata.json").exists()
