"""Helpers for the browser test: serve a built book on loopback and inspect pages in Chromium."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import threading
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    return os.environ.get("PERSONA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a free port); yields the base URL."""
    server = HTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@contextlib.contextmanager
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


MAX_VISIBLE_CODE_LINES = 15
RAW_MYST = re.compile(r"\{(glue|glue:text|glue:figure|ref|numref|cite|cite:t|cite:p|doc|eq)\}")

# Shown (not collapsed) tables and code blocks wider than the content column, or scrolling inside it.
_WIDE = """() => {
  const col = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const width = col.getBoundingClientRect().width;
  return Array.from(col.querySelectorAll('table, pre'))
    .filter(el => el.offsetParent !== null && el.getClientRects().length)
    .filter(el => el.scrollWidth > el.clientWidth + 2 || el.getBoundingClientRect().width > width + 2)
    .map(el => el.tagName.toLowerCase() + ' "' + el.innerText.trim().slice(0, 50).replace(/\\s+/g, ' ') + '"');
}"""
# Line counts of the code cells a reader sees without opening anything.
_VISIBLE_CODE = """() => Array.from(document.querySelectorAll('div.cell_input pre'))
  .filter(el => el.offsetParent !== null && el.getClientRects().length)
  .map(el => el.innerText.replace(/\\n+$/, '').split('\\n').length)"""


def layout_problems(page) -> list[str]:
    """Raw MyST roles left in the text, tables or code wider than the column, visible code cells too long."""
    text = page.inner_text("body")
    problems = [f"raw MyST role {m.group(0)}" for m in RAW_MYST.finditer(text)]
    problems += [f"wider than the content column: {w}" for w in page.evaluate(_WIDE)]
    problems += [f"visible code cell of {n} lines (at most {MAX_VISIBLE_CODE_LINES})"
                 for n in page.evaluate(_VISIBLE_CODE) if n > MAX_VISIBLE_CODE_LINES]
    return problems


def page_problems(page, url: str, need_figure: bool, screenshot: Path | None = None) -> list[str]:
    """Load ``url`` and list what is wrong: failed load, broken images, missing figure, tracebacks, and the
    layout defects of ``layout_problems``."""
    response = page.goto(url, wait_until="load")
    problems = []
    if response is None or not response.ok:
        problems.append(f"page did not load ({response.status if response else 'no response'})")
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    problems += [f"broken image {src}" for src in broken]
    if need_figure and page.locator("main img, article img").count() == 0:
        problems.append("no figure")
    if (page.locator(".output.traceback, .traceback").count()
            or "Traceback (most recent call last)" in page.inner_text("body")):
        problems.append("an executed cell shows an error traceback")
    problems += layout_problems(page)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    return problems
