"""JupyterLab serves the course: start `jupyter lab` on 127.0.0.1 (random free port, random
token, the repository as root), check over the REST API that it lists and opens the notebooks,
optionally look at one in headless Chromium, and stop the server by its PID."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# builds the whole book / starts a server: part of `make test`, not of the fast suite
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
STARTUP_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running JupyterLab: yields (base_url, token); stopped by PID afterwards."""
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    # user settings in a temp dir: no autosave (the browser test must never write a committed
    # notebook), no news pop-up, no update check
    settings = runtime / "user-settings" / "@jupyterlab"
    for plugin, values in {
        "docmanager-extension/plugin": {"autosave": False},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    log = (runtime / "lab.log").open("w")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(runtime / "config")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly",
         f"--LabApp.user_settings_dir={runtime / 'user-settings'}",
         f"--LabApp.workspaces_dir={runtime / 'workspaces'}",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        listed: list[str] = []
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{(runtime / 'lab.log').read_text()[-3000:]}")
            try:
                status, body = get(f"{base}/api/contents/notebooks", token)
                if status == 200:
                    listed = [item["name"] for item in json.loads(body)["content"]]
                    if set(NOTEBOOKS) <= set(listed):
                        break
            except OSError:
                pass  # not listening yet
            time.sleep(0.5)
        else:
            pytest.fail(f"jupyter lab did not list the notebooks within {STARTUP_S} s (got {listed}):\n"
                        f"{(runtime / 'lab.log').read_text()[-3000:]}")
        yield base, token
    finally:
        try:  # shut down kernels a browser may have started, then the server itself
            status, body = get(f"{base}/api/kernels", token)
            for kernel in json.loads(body) if status == 200 else []:
                get(f"{base}/api/kernels/{kernel['id']}", token, method="DELETE")
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        assert proc.poll() is not None


def test_lab_lists_and_serves_every_notebook(lab):
    base, token = lab
    status, body = get(f"{base}/api/contents/notebooks", token)
    assert status == 200
    listed = {item["name"]: item["type"] for item in json.loads(body)["content"]}
    assert NOTEBOOKS and all(listed.get(name) == "notebook" for name in NOTEBOOKS), listed
    status, body = get(f"{base}/api/contents/notebooks/{NOTEBOOKS[0]}", token)
    model = json.loads(body)
    assert status == 200 and model["type"] == "notebook" and model["content"]["cells"]
    status, page = get(f"{base}/lab", token)
    assert status == 200 and b"JupyterLab" in page
    assert get(f"{base}/api/contents/notebooks", "wrong-token")[0] == 403  # the token is needed


@pytest.mark.browser
def test_lab_opens_a_notebook_in_chromium(lab, tmp_path):
    """JupyterLab's UI renders the first notebook, asking only the local server for anything."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    base, token = lab
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from build_book import CHROMIUM_ARGS
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            outside: list[str] = []

            def route(r):
                if r.request.url.startswith((base, "data:", "blob:")):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(f"{base}/lab/tree/notebooks/{NOTEBOOKS[0]}?token={token}", timeout=120_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell .jp-RenderedMarkdown h1", timeout=120_000)
            page.wait_for_timeout(1000)  # let the outputs lay out
            shot = tmp_path / "jupyterlab.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            title = page.inner_text(".jp-NotebookPanel .jp-RenderedMarkdown h1")
            assert title.strip(), "the notebook's title did not render"
            assert not outside, f"JupyterLab asked for {outside}"
        finally:
            browser.close()
