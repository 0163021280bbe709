"""The viewer in a real browser: ``streamlit run`` on 127.0.0.1 and headless Chromium.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and Playwright's Python package
(no Playwright browser download: the system Chromium is launched directly); skipped
when either is missing. Deselect with ``-m "not browser"``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("NET2FAIR_CHROMIUM", "/usr/bin/chromium"))
# Flags that keep Chromium off the network (this machine has none) and out of the GPU.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


JS_IMAGES = """els => els.map(e => {
    let colours = 0;
    if (e.complete && e.naturalWidth > 0) {
        const c = document.createElement("canvas");
        c.width = e.naturalWidth; c.height = e.naturalHeight;
        const g = c.getContext("2d");
        g.drawImage(e, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        colours = seen.size;
    }
    return {src: e.currentSrc, complete: e.complete, w: e.naturalWidth, h: e.naturalHeight,
            colours: colours};
})"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited early with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"streamlit did not listen on port {port} within {timeout} s")


@pytest.fixture
def server(synth_tiny_model: Path, tmp_path: Path):
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115 (closed below)
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "streamlit_app.py"),
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--", "--model", str(synth_tiny_model),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc, 60)
        yield f"http://127.0.0.1:{port}", synth_tiny_model
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_until_done(page, timeout_ms: float) -> None:  # noqa: ANN001
    # The page has run when Streamlit's "running" widget has gone and the app has drawn.
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stImage"] img', timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout_ms)
    page.wait_for_timeout(500)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout_ms)


def test_viewer_in_chromium(server, tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    url, model_dir = server
    from net2fair import Translator

    res = Translator.load(model_dir).resolution
    from net2fair.viewer import display_size

    disp = display_size(res)
    shot = tmp_path / "viewer.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            # Tall: Streamlit scrolls inside its own container, so a full-page screenshot
            # holds only what fits in the viewport.
            page = browser.new_page(viewport={"width": 1400, "height": 2600})
            messages: list[str] = []
            page.on("pageerror", lambda e: messages.append(str(e)))
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            _wait_until_done(page, 90_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
            # Each image as the browser decoded it: its natural size and how many distinct
            # colours it has (read back through a canvas), so a blank or broken image fails.
            images = page.eval_on_selector_all('[data-testid="stImage"] img', JS_IMAGES)
            captions = page.locator('[data-testid="stImageCaption"]').all_inner_texts()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.is_file() and shot.stat().st_size > 10_000
    # input, reconstruction and one projection per other dataset, each a decoded image
    # at the display size (an integer multiple of the model's resolution).
    square = [im for im in images if im["complete"] and im["w"] == disp and im["h"] == disp]
    assert len(square) >= 4, images
    assert all(im["colours"] >= 8 for im in square), images
    assert any("reconstruction" in c for c in captions), captions
    assert sum("→" in c for c in captions) >= 2, captions
    assert any(im["src"].endswith(".gif") or ".gif" in im["src"] for im in images), images
    assert not messages, messages
    print(f"screenshot: {shot}")
