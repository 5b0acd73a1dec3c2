"""A person's view: `knowlm web` with the default model, driven by headless Chromium (slow; runs in CI,
where .ci/run installs Debian's chromium). The screenshot is kept in test-artifacts/."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(
    os.environ.get("KNOWLM_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)


@pytest.fixture
def web_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        [sys.executable, "-m", "knowlm.cli.main", "web", "--model", "default", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"knowlm web exited early:\n{process.stdout.read()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        process.kill()
        pytest.fail("knowlm web did not come up in 240 s")
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (CI installs it in .ci/run)")
def test_extraction_in_the_browser(web_server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            page.goto(web_server, wait_until="networkidle", timeout=120_000)
            page.locator("#extract-text textarea").fill("马云在杭州创立了阿里巴巴集团。")
            page.locator("#extract-button").click()
            page.wait_for_function(
                "() => (document.querySelector('#extract-status')?.innerText || '').includes('items')",
                timeout=180_000,
            )
            status = page.locator("#extract-status").inner_text()
            table = page.locator("#extract-table").inner_text()
            page.screenshot(path=str(ARTIFACTS / "web-extract.png"), full_page=True)
        finally:
            browser.close()
    assert "items" in status
    # an extracted mention of the text shows in the results table
    assert any(mention in table for mention in ("马云", "杭州", "阿里巴巴")), table
    assert (ARTIFACTS / "web-extract.png").stat().st_size > 10_000
