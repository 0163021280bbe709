"""``net2fair view`` (net2fair/commands/models.py): stopping the viewer stops its
Streamlit server (the command in a subprocess, stopped by a signal)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# ------------------------------------------------------------- 11: the viewer's server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
def test_stopping_the_viewer_stops_its_server(tiny_model: Path, sig: signal.Signals) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "net2fair", "view", str(tiny_model), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "STREAMLIT_SERVER_HEADLESS": "true"},
    )
    try:
        deadline = time.time() + 90
        while not _listening(port):
            assert proc.poll() is None, "net2fair view exited early"
            assert time.time() < deadline, "the viewer never listened"
            time.sleep(0.5)
        proc.send_signal(sig)
        proc.wait(30)
        deadline = time.time() + 20
        while _listening(port) and time.time() < deadline:
            time.sleep(0.5)
        assert not _listening(port), "the Streamlit server was left listening"
    finally:
        if proc.poll() is None:
            proc.kill()
