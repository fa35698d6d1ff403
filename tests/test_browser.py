"""The rendered smoke-profile book in real headless Chromium: every page loads, images load,
chapters show a figure, and no executed cell shows a traceback. Screenshots go to
``_build/screenshots/``."""

import os
import shutil

import pytest

from persona_features.book import runner
from persona_features.core.paths import repo_root

from . import browser

pytestmark = pytest.mark.notebooks
PAGES = runner.toc_files(repo_root())


@pytest.fixture(scope="module")
def chromium():
    if browser.chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `make test` installs Debian's chromium (apt-get install chromium)")
        pytest.skip("no Chromium here; install Debian's `chromium` to run the browser test")
    with browser.browser() as b:
        yield b


@pytest.mark.parametrize("page_file", PAGES)
def test_page_renders_cleanly(smoke_build, chromium, page_file):
    with browser.serve(smoke_build["html"]) as base:
        page = chromium.new_page()
        shot = repo_root() / "_build" / "screenshots" / (page_file.replace("/", "__") + ".png")
        problems = browser.page_problems(page, f"{base}/{page_file}.html", page_file.startswith("notebooks/"), shot)
        page.close()
    assert not problems, f"{page_file}: {problems}"


def test_the_check_catches_a_broken_image_and_a_traceback(smoke_build, chromium, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(smoke_build["html"], site)
    chapter = site / f"{runner.toc_notebooks(repo_root())[0].replace('.ipynb', '.html')}"
    html = chapter.read_text()
    broken = html.replace("<img ", '<img src="../_images/missing.png" data-broken="1" ', 1)
    broken = broken.replace("</article>", '<div class="output traceback"><pre>Traceback (most recent call last):\n'
                                          "ZeroDivisionError</pre></div></article>", 1)
    chapter.write_text(broken)
    with browser.serve(site) as base:
        page = chromium.new_page()
        problems = browser.page_problems(page, f"{base}/{chapter.relative_to(site).as_posix()}", True)
        page.close()
    assert any(p.startswith("broken image") for p in problems), problems
    assert "an executed cell shows an error traceback" in problems


LONG_CELL = ('<div class="cell docutils container"><div class="cell_input docutils container"><div class="highlight">'
             "<pre>" + "\n".join(f"x{i} = {i}" for i in range(20)) + "</pre></div></div></div>")
# a table that cannot wrap to the column (the book's CSS wraps ordinary cells)
WIDE_TABLE = ('<table style="min-width: 2000px"><tr>' + "".join(f"<td>column {i}</td>" for i in range(12))
              + "</tr></table>")


def test_the_check_catches_raw_myst_wide_tables_and_long_code(smoke_build, chromium, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(smoke_build["html"], site)
    chapter = site / f"{runner.toc_notebooks(repo_root())[0].replace('.ipynb', '.html')}"
    clean = chapter.read_text()
    hidden = f'<details class="hide above-input"><summary>Show code</summary>{LONG_CELL}</details>'
    defects = {"raw MyST role {glue:text}": "<p>(profile {glue:text}`profile_name`)</p>",
               "wider than the content column: table": WIDE_TABLE,
               "visible code cell of 20 lines": LONG_CELL}
    variants = {"hidden": hidden, **defects}  # each in its own file: a reused URL may come from the cache
    for i, html in enumerate(variants.values()):
        chapter.with_name(f"variant{i}.html").write_text(clean.replace("</article>", html + "</article>", 1))
    with browser.serve(site) as base:
        page = chromium.new_page()
        found = {}
        for name, i in [("clean", None)] + [(k, i) for i, k in enumerate(variants)]:
            target = chapter if i is None else chapter.with_name(f"variant{i}.html")
            page.goto(f"{base}/{target.relative_to(site).as_posix()}")
            found[name] = browser.layout_problems(page)
        page.close()
    assert found["hidden"] == found["clean"]  # a long cell that starts collapsed is fine
    for expected in defects:
        new = [p for p in found[expected] if p not in found["clean"]]
        assert any(p.startswith(expected) for p in new), (expected, new)
