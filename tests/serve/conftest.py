"""Model directories trained on the fake shop, and a real uvicorn service in a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from hoprec.cli import app
from hoprec.data.fake import QUERY

API_KEY = "test-key"


def train(schema: Path, model: str, out: Path, *params: str) -> Path:
    args = ["train", "-s", str(schema), "-q", QUERY, "--model", model, "-o", str(out)]
    for p in params:
        args += ["-p", p]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="session")
def serve_shop(fake_shop, tmp_path_factory):
    """The fake shop plus one customer with a segment and no orders (for the segment fallback)."""
    folder = tmp_path_factory.mktemp("serveshop")
    for f in Path(fake_shop).parent.iterdir():
        shutil.copy(f, folder / f.name)
    cust = pd.read_csv(folder / "customers.csv")
    extra = pd.DataFrame({"customer_id": ["C999"], "segment": ["pro"], "signup": ["2023-06-01"]})
    pd.concat([cust, extra]).to_csv(folder / "customers.csv", index=False)
    return folder / "schema.yaml"


@pytest.fixture(scope="session")
def model_dirs(serve_shop, tmp_path_factory):
    """``{"repeat": dir, "als": dir}``, each with its serving data built."""
    from hoprec.serve.data import load_or_build

    root = tmp_path_factory.mktemp("models")
    dirs = {m: train(serve_shop, m, root / m) for m in ("repeat", "als", "itemknn")}
    for d in dirs.values():
        load_or_build(d, serve_shop)
    return dirs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m uvicorn`` on a free loopback port, settings from HOPREC_* variables."""

    def __init__(self, model_dir: Path, events: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "HOPREC_MODEL_DIR": str(model_dir), "HOPREC_EVENTS_PATH": str(events),
                    "HOPREC_API_KEY": API_KEY, **env}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "hoprec.serve.app:app_from_env",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited: {self.proc.stdout.read().decode()}")
            try:
                if httpx.get(self.url + "/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("service did not become ready")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


@pytest.fixture(scope="module")
def server(model_dirs, tmp_path_factory):
    s = Server(model_dirs["repeat"], tmp_path_factory.mktemp("events") / "events.sqlite").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
