"""The chapters' code as a reader sees it, checked without executing anything."""

import json

import pytest

from persona_features.book import runner
from persona_features.core.paths import repo_root

from .browser import MAX_VISIBLE_CODE_LINES

HIDDEN = {"remove-cell", "remove-input", "hide-input", "hide-cell", "parameters"}


@pytest.mark.parametrize("notebook", runner.toc_notebooks(repo_root()))
def test_visible_code_cells_are_short_and_the_setup_is_one_call(notebook):
    cells = [c for c in json.loads((repo_root() / notebook).read_text())["cells"] if c["cell_type"] == "code"]
    visible = [c for c in cells if not HIDDEN & set(c.get("metadata", {}).get("tags", []))]
    long = {i: n for i, c in enumerate(visible) if (n := len("".join(c["source"]).rstrip("\n").split("\n")))
            > MAX_VISIBLE_CODE_LINES}
    assert not long, f"{notebook}: visible code cells longer than {MAX_VISIBLE_CODE_LINES} lines: {long}"
    first = "".join(visible[0]["source"])
    assert first.count("chapter.setup(profile, overrides") == 1 and "params.resolve" not in first
