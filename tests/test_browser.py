"""The rendered smoke-profile book in real headless Chromium: every page loads, images load,
chapters show a figure, and no executed cell shows a traceback. Screenshots go to
``_build/screenshots/``."""

import os
import shutil

import pytest

from persona_features import runner
from persona_features.paths import repo_root

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
