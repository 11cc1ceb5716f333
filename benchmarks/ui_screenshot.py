"""The README's screenshot of /ui on The Complete Journey: train, serve, drive Chromium, save a PNG.

    python benchmarks/ui_screenshot.py [--model repeat] [--out docs/ui.png]

Trains ``--model`` on all of The Complete Journey (``hoprec train``), starts ``hoprec serve`` on a
free loopback port (titles from ``product_category``, categories from ``department``: the shipped
schema has no product name column), opens the customer with the longest history in Debian's
Chromium (``HOPREC_CHROMIUM`` to use another), caps each department at two items to show the
re-ranked list beside the default one, and saves the viewport. Needs ``hoprec[serve,ui]`` and ``apt-get install chromium``.
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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "examples" / "completejourney" / "schema.yaml"
QUERY = ("PREDICT LIST_DISTINCT(transactions.product_id, 0, 30, days) RANK TOP 12 "
         "FOR EACH households.household_id")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="repeat")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "ui.png")
    args = ap.parse_args()
    hoprec = [sys.executable, "-m", "hoprec.cli"]
    with tempfile.TemporaryDirectory(prefix="hoprec-ui-") as tmp:
        model = Path(tmp) / args.model
        subprocess.run([*hoprec, "train", "-s", str(SCHEMA), "-q", QUERY, "--model", args.model,
                        "-o", str(model)], check=True)
        port = free_port()
        env = {**os.environ, "HOPREC_TITLE_COLUMN": "product_category", "HOPREC_CATEGORY_COLUMN": "department"}
        server = subprocess.Popen([*hoprec, "serve", str(model), "-s", str(SCHEMA), "--port", str(port),
                                   "--events", str(Path(tmp) / "events.sqlite")], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 600
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the service did not start")
                try:
                    if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(1)
            shoot(url, args.out)
        finally:
            server.terminate()
            server.wait(30)
    print(f"wrote {args.out}")


def shoot(url: str, out: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    chromium = os.environ.get("HOPREC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    user = httpx.get(url + "/users/search", params={"limit": 1}).json()["users"][0]["user_id"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 1050})
        page.goto(f"{url}/ui#user={user}")
        expect(page.get_by_test_id("recs-base").get_by_test_id("rec-item")).to_have_count(10)
        page.locator("#opt-cap").fill("2")
        page.locator("#opt-cap").dispatch_event("change")
        expect(page.get_by_test_id("recs-opts").locator(".move.new").first).to_be_visible()
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()
    from PIL import Image  # matplotlib's dependency: 128 colours keep the repository small

    Image.open(out).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


if __name__ == "__main__":
    main()
