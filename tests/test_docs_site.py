"""The documentation site: every public name has an API page, every page example is a
doctest, and the built site works in a real browser.

The browser checks (marker ``docs``) open the site that ``make docs`` built into
``docs/_build/html`` in headless Chromium, served over HTTP from 127.0.0.1 as a reader's
browser would see it: each checked page loads without a JavaScript error, every link to
a local page resolves to a file of the site, every math element has been typeset by
MathJax (served from the site itself: no network) and every image has decoded pixels.
Without a built site or a browser they skip locally; under ``CI`` they fail.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib
import os
import pathlib
import pkgutil
import re
import threading
import types
import urllib.parse
from collections.abc import Iterator

import pytest
from browser import launch
from conftest import missing

import jaxinit

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SITE = pathlib.Path(os.environ.get("JAXINIT_DOCS_BUILD", DOCS / "_build")) / "html"
# The modules the reference must cover at least; any other public module is found below.
REQUIRED_MODULES = {"jaxinit", "jaxinit.torch", "jaxinit.layout", "jaxinit.diagnostics",
                    "jaxinit.hf"}


def public_modules() -> list[str]:
    """``jaxinit`` and every importable submodule without a leading underscore."""
    return ["jaxinit", *(f"jaxinit.{m.name}" for m in pkgutil.iter_modules(jaxinit.__path__)
                         if not m.name.startswith("_"))]


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """The ``(info string, body)`` of each top-level ``` fence of a Markdown page."""
    blocks, info, body = [], None, []
    for line in text.splitlines():
        if info is None and line.startswith("```"):
            info, body = line[3:].strip(), []
        elif info is not None and line.strip() == "```":
            blocks.append((info, "\n".join(body)))
            info = None
        elif info is not None:
            body.append(line)
    assert info is None, "an unclosed code fence"
    return blocks


# Fences that are not Python examples (shell commands, captured text, Sphinx directives).
NOT_PYTHON = ("bash", "text", "{toctree}", "{include}", "{literalinclude}")


def test_page_examples_are_doctests():
    """A Python example on a page runs as a doctest (a ``{doctest}`` block, run by the
    doctest build of ``make docs``) or as an executed ``{code-cell}``, never as an untested
    ``python`` fence or a ``>>>`` example elsewhere."""
    pages = sorted(DOCS.glob("*.md"))
    assert len(pages) >= 10
    for page in pages:
        for info, body in fenced_blocks(page.read_text()):
            kind = info.split()[0] if info else ""
            assert kind in ("{doctest}", "{code-cell}", *NOT_PYTHON), (
                f"{page.name}: a ```{info} fence is not run as a doctest")
            if kind != "{doctest}":
                assert ">>>" not in body, f"{page.name}: a >>> example outside a doctest block"
        assert ">>>" not in re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S), (
            f"{page.name}: a >>> example outside a code block")


def test_fenced_blocks_parser():
    # The check above relies on the parser; a wrong fence kind must be reported.
    text = "x\n```{doctest}\n>>> 1\n1\n```\n\n```python\n>>> 2\n```\n"
    assert fenced_blocks(text) == [("{doctest}", ">>> 1\n1"), ("python", ">>> 2")]


# --- the built site -------------------------------------------------------------------


@pytest.fixture(scope="module")
def site() -> pathlib.Path:
    if not (SITE / "index.html").is_file():
        missing(f"the documentation site is not built ({SITE}/index.html): run `make docs`")
    return SITE


@pytest.mark.docs
def test_every_public_name_has_an_api_page(site):
    modules = public_modules()
    assert set(modules) >= REQUIRED_MODULES
    absent = []
    for name in modules:
        module = importlib.import_module(name)
        if not (site / "api" / f"{name}.html").is_file():
            absent.append(name)
        for member in module.__all__:
            # A public submodule named in __all__ has its module page; other names a stub.
            is_module = isinstance(getattr(module, member), types.ModuleType)
            page = (site / "api" / f"{name}.{member}.html" if is_module
                    else site / "api" / "generated" / f"{name}.{member}.html")
            if not page.is_file():
                absent.append(f"{name}.{member}")
    assert not absent, f"no API page for {absent}"


@contextlib.contextmanager
def serve(directory: pathlib.Path) -> Iterator[str]:
    """Serves ``directory`` on an ephemeral 127.0.0.1 port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the base class signature; no request log
        pass


@pytest.fixture(scope="module")
def browser(site):
    with launch() as b:
        yield b


@pytest.fixture(scope="module")
def base_url(site) -> Iterator[str]:
    with serve(site) as url:
        yield url


# Each checked page, with what it must contain: (path, min math elements, min images).
PAGES = [
    ("index.html", 0, 0),
    ("api/generated/jaxinit.he_normal.html", 0, 0),
    ("notebooks/02_signal_propagation.html", 0, 1),   # the executed notebook's figures
    ("choosing.html", 5, 1),                          # formulas and the build-time plot
    ("api/generated/jaxinit.diagnostics.signal_stats.html", 1, 0),  # :math: in a docstring
]


def local_target(site: pathlib.Path, base_url: str, href: str) -> pathlib.Path | None:
    """The file of the site that an absolute link URL points at (None: not this site)."""
    if not href.startswith(base_url):
        return None
    path = urllib.parse.unquote(urllib.parse.urlsplit(href).path)
    target = site / path.lstrip("/")
    return target / "index.html" if target.is_dir() else target


@pytest.mark.docs
@pytest.mark.parametrize(("path", "min_math", "min_images"), PAGES, ids=[p[0] for p in PAGES])
def test_page_in_browser(site, browser, base_url, path, min_math, min_images):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.url}: {r.status}"))
    response = page.goto(base_url + path, wait_until="networkidle")
    assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"
    assert "jaxinit" in page.title()

    # Links: every href to this site names a file that exists (fragments and queries aside).
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    assert hrefs, f"{path}: no links (the theme's navigation is missing)"
    broken = sorted({h for h in hrefs
                     if (t := local_target(site, base_url, h)) is not None and not t.is_file()})
    assert not broken, f"{path}: links to missing pages {broken}"
    assert not failed, f"{path}: requests failed (a missing script, style or image): {failed}"

    # Math: MathJax typesets every math element into an <mjx-container> inside it.
    math = page.locator("span.math, div.math")
    if min_math:
        page.wait_for_selector("mjx-container", timeout=30_000)
    n_math = math.count()
    assert n_math >= min_math, f"{path}: {n_math} math elements, expected >= {min_math}"
    typeset = page.locator("span.math mjx-container, div.math mjx-container").count()
    assert typeset == n_math, f"{path}: {typeset} of {n_math} math elements typeset"

    # Images: each <img> decoded (naturalWidth > 0), not a broken-image placeholder.
    widths = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.getAttribute('src'), e.complete ? e.naturalWidth : 0])")
    assert len(widths) >= min_images, f"{path}: {len(widths)} images, expected >= {min_images}"
    assert all(w > 0 for _, w in widths), f"{path}: images without pixels: {widths}"
    assert not errors, f"{path}: JavaScript errors {errors}"
    page.close()
