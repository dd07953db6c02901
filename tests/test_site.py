"""The book's site, built once and read in a headless browser with no network.

The build runs the README's command (`jupyter-book build . -W -n --keep-going`, so any warning fails
it) into a temporary folder. Debian's Chromium then opens the pages from a local HTTP server and
checks what a reader sees: every chapter's title, its math typeset by MathJax from the local copy
(there is no network, so the CDN cannot be what renders it), its figures, the Colab button, and that
no internal link is broken. The front page's screenshot is saved as `_build/screenshot_front.png`,
the CI artifact to look at.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
import yaml
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "_build" / "screenshot_front.png"
COLAB_PREFIX = "https://colab.research.google.com/github/cyclegan-edu/cyclegan-edu/blob/main/"
# Vendored by `bash .ci/setup` and loaded by book/_static/mathjax-loader.js.
LOCAL_MATHJAX = "_static/mathjax/tex-svg-full.js"
CDN_MATHJAX = "https://cdn.jsdelivr.net/npm/mathjax@"
WAIT_S = 30


def toc_chapters() -> list[str]:
    """The chapter notebooks, as listed in the "Chapters" part of _toc.yml (e.g. "notebooks/00_...")."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    part = next(p for p in toc["parts"] if p["caption"] == "Chapters")
    return [entry["file"] for entry in part["chapters"]]


def notebook_title(chapter: str) -> str:
    """The text of the notebook's first `# ` heading, without Markdown emphasis or code marks."""
    notebook = json.loads((ROOT / f"{chapter}.ipynb").read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return re.sub(r"[`*_]", "", line[2:]).strip()
    raise AssertionError(f"{chapter}.ipynb has no '# Title' heading in a markdown cell")


CHAPTERS = toc_chapters()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Build the book once, warnings as errors; the HTML folder."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")  # the one of this environment
    if not jupyter_book.exists():
        pytest.fail(f"{jupyter_book} not found: install the requirements (bash .ci/setup)", pytrace=False)
    out = tmp_path_factory.mktemp("site")  # a fresh build: no cached page can hide a warning
    command = [str(jupyter_book), "build", str(ROOT), "-W", "-n", "--keep-going", "--path-output", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        log = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout[-8000:] + "\n" + result.stderr[-8000:])  # no colours
        pytest.fail(f"`{' '.join(command)}` exited with {result.returncode}:\n{log}", pytrace=False)
    return out / "_build" / "html"


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site quietly; answers 404 for the paths in `hidden` (to take the local MathJax away)."""

    def __init__(self, *args, hidden: frozenset[str] = frozenset(), **kwargs):
        self.hidden = hidden  # set before the base class handles the request in its __init__
        super().__init__(*args, **kwargs)

    def do_GET(self):
        if urlsplit(self.path).path in self.hidden:
            self.send_error(404)
        else:
            super().do_GET()

    def log_message(self, *args):
        pass


class SiteServer(http.server.ThreadingHTTPServer):
    """A browser that leaves a page cancels the requests still open: the connection resets while the
    file is sent. That is not an error of the site, so it prints nothing; any other error prints its
    traceback as usual."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):   # reset, aborted, broken pipe
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(directory: Path, hidden: frozenset[str] = frozenset()):
    """Serve `directory` from 127.0.0.1 in a thread; yields the base URL."""
    handler = functools.partial(SiteHandler, directory=str(directory), hidden=hidden)
    server = SiteServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def base_url(site):
    with serving(site) as url:
        yield url


def wait_for(driver, script: str, what: str):
    """Poll the JavaScript expression `script` until it is truthy; fail naming `what` otherwise."""
    try:
        return WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(f"return {script};"))
    except TimeoutException:
        message = f"{driver.current_url}: {what} (waited {WAIT_S} s)"
    pytest.fail(message, pytrace=False)  # outside `except`: Selenium's empty timeout stays out of the report


MATH_DONE = "[...document.querySelectorAll('.math')].every(m => m.querySelector('mjx-container'))"
MATH_TYPESET = f"document.querySelectorAll('.math').length > 0 && {MATH_DONE}"
FIGURES_LOADED = ("[...document.querySelectorAll('.cell_output img')].length > 0 && "
                  "[...document.querySelectorAll('.cell_output img')].every(i => i.complete && i.naturalWidth > 0)")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[Path(c).name for c in CHAPTERS])
def test_chapter_page_shows_title_math_figures_and_colab_button(browser, base_url, chapter):
    browser.get(urljoin(base_url, f"{chapter}.html"))
    heading = browser.find_element(By.CSS_SELECTOR, "article h1").text
    assert notebook_title(chapter) in heading

    wait_for(browser, MATH_TYPESET,
             f"MathJax did not typeset every formula; is its local copy at book/{LOCAL_MATHJAX} "
             "(vendored by bash .ci/setup with npm)?")
    errors = browser.execute_script("return document.querySelectorAll('mjx-merror, [data-mml-node=\"merror\"]').length;")
    assert errors == 0, f"{chapter}: {errors} formula(s) with TeX errors"

    wait_for(browser, FIGURES_LOADED, "no figure, or a figure <img> that did not load")

    colab = browser.find_element(By.CSS_SELECTOR, "a[href^='https://colab.research.google.com/']")
    assert colab.get_attribute("href") == f"{COLAB_PREFIX}{chapter}.ipynb"


# (page, what its first static explorer is, a number each of its frames shows: a measured score, or the
# PatchGAN's field in pixels): each must respond to its slider with no kernel
STATIC_EXPLORERS = [("notebooks/03_cycle_consistency", "the λ sweep explorer (widgets.sweep_explorer)", r"\d\.\d{2}"),
                    ("notebooks/05_networks_and_patchgan", "the PatchGAN explorer (widgets.patchgan_explorer)",
                     r"\d+×\d+ px"),
                    ("notebooks/07_live_training", "the recorded training film (widgets.training_film)", r"\d\.\d{2}")]


@pytest.mark.parametrize("page, what, number", STATIC_EXPLORERS, ids=[Path(p).name for p, _, _ in STATIC_EXPLORERS])
def test_static_explorers_switch_image_and_numbers_without_a_kernel(browser, base_url, page, what, number):
    """The explorers are plain HTML/JS: on the static site, moving the slider shows each precomputed frame
    in turn (another image, other numbers), with no kernel and no widget library."""
    browser.get(urljoin(base_url, f"{page}.html"))
    slider = "document.querySelector('.cg-explorer input.cg-slider')"
    wait_for(browser, f"{slider} !== null", f"{page} shows no {what}")
    shown = browser.execute_script(f"""
        const s = {slider}, box = s.closest('.cg-explorer'), seen = [];
        for (let i = 0; i <= +s.max; i++) {{
            s.value = i;
            s.dispatchEvent(new Event('input', {{bubbles: true}}));
            seen.push([box.querySelector('.cg-value').textContent, box.querySelector('img.cg-figure').src,
                       box.querySelector('.cg-metrics').textContent]);
        }}
        return seen;""")
    labels, images, numbers = zip(*shown)
    assert len(shown) >= 2 and len(set(labels)) == len(shown), f"{what}: the slider's labels do not change: {labels}"
    assert len(set(images)) == len(shown), f"{what}: moving the slider does not switch the image"
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert len(set(numbers)) == len(shown) and all(re.search(number, n) for n in numbers), \
        f"{what}: moving the slider does not switch the numbers: {numbers}"


def test_front_page_renders_and_is_saved_as_screenshot(browser, base_url):
    browser.get(base_url)  # index.html redirects to the root page of _toc.yml
    wait_for(browser, f"document.readyState === 'complete' && {MATH_DONE}", "the front page did not finish rendering")
    assert browser.current_url == urljoin(base_url, "book/intro.html")
    assert browser.find_element(By.CSS_SELECTOR, "article h1").text.startswith("CycleGAN, executable")
    chapter_links = browser.execute_script(
        "return [...document.querySelectorAll('nav.bd-links a')].map(a => a.getAttribute('href'));")
    for chapter in CHAPTERS:
        assert any(link.endswith(f"{Path(chapter).name}.html") for link in chapter_links), f"{chapter} not in the sidebar"

    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_references_page_lists_every_bibtex_entry(browser, base_url):
    bib = (ROOT / "book" / "references.bib").read_text()
    n_entries = len(re.findall(r"^@\w+\{", bib, flags=re.MULTILINE))
    browser.get(urljoin(base_url, "book/references.html"))
    rendered = browser.execute_script("return document.querySelectorAll('[role=\"doc-biblioentry\"]').length;")
    assert n_entries >= 10 and rendered == n_entries


def test_mathjax_falls_back_to_the_cdn_without_the_local_copy(browser, site):
    """A site built without npm still gets math online: the loader then asks the CDN."""
    with serving(site, hidden=frozenset({"/" + LOCAL_MATHJAX})) as url:
        browser.get(urljoin(url, f"{CHAPTERS[0]}.html"))
        wait_for(browser, f"document.querySelector('script[src^=\"{CDN_MATHJAX}\"]') !== null",
                 "the MathJax loader did not fall back to the CDN")


class LinkCollector(HTMLParser):
    """The URLs a page refers to: <a href>, <link href>, <img src>, <script src>."""

    ATTRIBUTE = {"a": "href", "link": "href", "img": "src", "script": "src"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        value = dict(attrs).get(self.ATTRIBUTE.get(tag, ""))
        if value:
            self.urls.append(value)


def test_no_internal_link_is_broken(site, base_url):
    pages = [p for p in site.rglob("*.html") if not any(part.startswith("_") for part in p.relative_to(site).parts)]
    assert len(pages) >= 2 + len(CHAPTERS)
    targets: dict[str, str] = {}  # internal URL without fragment -> the first page linking to it
    for page in pages:
        page_url = urljoin(base_url, page.relative_to(site).as_posix())
        collector = LinkCollector()
        collector.feed(page.read_text(encoding="utf-8"))
        for reference in collector.urls:
            target = urldefrag(urljoin(page_url, reference)).url
            if target.startswith(base_url):
                targets.setdefault(target, page_url)

    broken = []
    for target, linked_from in sorted(targets.items()):
        try:
            with urllib.request.urlopen(target, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        if status != 200:
            broken.append(f"{target} (status {status}, linked from {linked_from})")
    assert not broken, "broken internal links:\n" + "\n".join(broken)
    assert len(targets) > len(pages)


# (page, quiz): each must judge clicks and keep the tally with no kernel
QUIZZES = ["notebooks/08_evaluation"]


@pytest.mark.parametrize("page", QUIZZES, ids=[Path(p).name for p in QUIZZES])
def test_the_real_or_fake_quiz_keeps_score_without_a_kernel(browser, base_url, page):
    """The real-or-fake quiz (widgets.real_or_fake_quiz) is plain HTML/JS: on the static site each click on an
    image is judged, the next pair shows, the tally counts, the end compares the reader's fooling rate with
    the judge's, and restart starts again."""
    browser.get(urljoin(base_url, f"{page}.html"))
    wait_for(browser, "document.querySelector('.cg-quiz .cg-trial') !== null", f"{page} shows no real-or-fake quiz")
    quiz = browser.find_element(By.CSS_SELECTOR, ".cg-quiz")
    trials = quiz.find_elements(By.CSS_SELECTOR, ".cg-trial")
    text = lambda css: quiz.find_element(By.CSS_SELECTOR, css).text
    for i, trial in enumerate(trials):
        assert trial.is_displayed(), f"{page}: pair {i + 1} is not shown after {i} answers"
        fake = trial.get_attribute("data-fake")
        pick = fake if i % 2 else {"left": "right", "right": "left"}[fake]        # fooled on every second pair
        trial.find_element(By.CSS_SELECTOR, f".cg-pick[data-side='{pick}']").click()
        assert text(".cg-feedback").startswith(f"Pair {i + 1}: {'fooled' if i % 2 else 'right'}"), text(".cg-feedback")
    n, fooled = len(trials), len(trials) // 2
    judge = sum(t.get_attribute("data-judge") == "1" for t in trials)
    assert n >= 4 and text(".cg-tally").startswith(f"{n} of {n} pairs done · fooled on {fooled}"), text(".cg-tally")
    assert f"You were fooled on {fooled} of {n} pairs" in text(".cg-summary")
    assert f"the judge on {judge} of {n}" in text(".cg-summary"), text(".cg-summary")
    quiz.find_element(By.CSS_SELECTOR, ".cg-restart").click()
    assert trials[0].is_displayed() and text(".cg-tally").startswith(f"0 of {n} pairs done")


def test_the_site_server_is_quiet_only_about_requests_the_browser_cancelled(capsys):
    server = SiteServer(("127.0.0.1", 0), SiteHandler)
    try:
        for error, printed in ((ConnectionResetError, False), (BrokenPipeError, False), (ConnectionAbortedError, False),
                               (ValueError, True)):
            try:
                raise error("while sending a file")
            except error:
                server.handle_error(None, ("127.0.0.1", 50000))
            assert ("Exception occurred during processing" in capsys.readouterr().err) == printed, error
    finally:
        server.server_close()
