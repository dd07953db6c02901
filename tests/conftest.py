"""Shared test set-up.

At import time (before any test or nbval notebook runs in this pytest process): the ``ci`` preset,
and the domain and run caches in a fresh temporary folder, unless the caller set them already. That
folder (about 1 GB after a full run) is removed when the pytest process exits, however it ends, so
repeated runs do not fill the disk.
The fixtures build tiny image folders with PIL directly, so the unit tests do not depend on
:mod:`cyclegan_edu.domains`.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("CYCLEGAN_EDU_PRESET", "ci")
if not (os.environ.get("CYCLEGAN_EDU_DATA") and os.environ.get("CYCLEGAN_EDU_RUNS")):
    _session_dir = Path(tempfile.mkdtemp(prefix="cyclegan_edu_tests_"))
    os.environ.setdefault("CYCLEGAN_EDU_DATA", str(_session_dir / "data"))
    os.environ.setdefault("CYCLEGAN_EDU_RUNS", str(_session_dir / "runs"))
    atexit.register(shutil.rmtree, _session_dir, ignore_errors=True)

DATA = Path(__file__).parent / "data"
SIZE = 32


@pytest.fixture(autouse=True)
def stop_signals_at_their_defaults():
    """Every test starts with SIGINT, SIGTERM and SIGHUP at Python's defaults, whatever the suite was started
    from: a background job of a non-interactive shell (`bash .ci/run &`) ignores SIGINT, `nohup` ignores
    SIGHUP, and the trainer rightly leaves an ignored signal ignored, so the tests that send these signals
    would see nothing happen. Restored after the test."""
    import signal
    from cyclegan_edu.train import STOP_SIGNALS
    defaults = {signum: signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
                for signum in STOP_SIGNALS}
    previous = {signum: signal.signal(signum, handler) for signum, handler in defaults.items()}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def square_image(rng: np.random.Generator, background: int, square: int, size: int = SIZE) -> Image.Image:
    """A noisy flat background with one axis-aligned square of another grey level, randomly placed."""
    arr = np.full((size, size, 3), background, dtype=np.int16)
    arr += rng.integers(-6, 7, size=arr.shape, dtype=np.int16)
    side = int(rng.integers(size // 4, size // 2 + 1))
    y, x = rng.integers(0, size - side, size=2)
    arr[y:y + side, x:x + side] = square + rng.integers(-6, 7, size=3)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def write_unpaired_folder(root: Path, n_train: int = 16, n_test: int = 4, size: int = SIZE, seed: int = 0) -> Path:
    """The official layout: A = dark squares on dark ground, B = bright squares on bright ground."""
    rng = np.random.default_rng(seed)
    for phase, n in (("train", n_train), ("test", n_test)):
        for domain, (ground, square) in (("A", (40, 90)), ("B", (200, 150))):
            folder = root / f"{phase}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                square_image(rng, ground, square, size).save(folder / f"{domain.lower()}{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """16 training and 4 test images per domain, 32×32 PNG (read-only: do not write into it)."""
    return write_unpaired_folder(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def official_manifest() -> dict:
    """Names and shapes of the official networks' state_dicts (``tests/data/official_state_dict.json``)."""
    import json
    return json.loads((DATA / "official_state_dict.json").read_text())["networks"]


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--disable-dev-shm-usage", "--window-size=1280,1000")
PAGE_LOAD_S = 30


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Selenium, with no network (the site test; the static
    explorers' scripts in tests/test_widgets.py)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"the browser test needs Debian's {CHROMIUM} and {CHROMEDRIVER}: "
                    "apt-get install chromium chromium-driver (bash .ci/setup does it as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_S)
    yield driver
    driver.quit()
