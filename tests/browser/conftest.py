"""Browser fixtures: one JupyterLab server, one headless Chromium and one simulator per test session.

Recipe: ``/work/shared/browser-testing.md`` (Debian ``chromium`` driven by Playwright through ``executable_path``,
Jupyter on 127.0.0.1 with a token and isolated ``JUPYTER_*`` dirs, a unique notebook and workspace per test,
conditions instead of sleeps, sessions deleted after each test).

The simulator runs in this (pytest) process on the wall clock; its ``env`` (fake credentials and endpoints)
goes into the server's environment, so every kernel talks to it without ``--simulate`` and the tests can
count the requests that reach it. Tasks are added by each test right before it runs its notebook, so a
task starts at 0 % when the test starts watching it.

Everything here skips cleanly when ``playwright`` or ``chromium`` is missing; nothing else is optional.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import pytest

from export_widgets.simulator import Simulator, serve

#: Every wait in this suite is bounded; these are the bounds.
SERVER_START_TIMEOUT = 60.0
OPEN_TIMEOUT = 60.0  # page load until the kernel is connected and idle
LOCAL_HOSTS = {"127.0.0.1"}

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- reports: let fixtures know whether the test failed (to keep a failure screenshot) ------------------

@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def artifacts_dir(pytestconfig: pytest.Config) -> Path:
    """``test-artifacts/browser/`` at the repository root (gitignored): screenshots and failure dumps."""
    path = pytestconfig.rootpath / "test-artifacts" / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the simulator ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sim() -> Iterator[Simulator]:
    """An empty simulator on the wall clock (tests add their own uniquely named tasks)."""
    with serve([]) as running:
        yield running
        assert not running.errors, f"the simulator raised: {running.errors!r}"


# -- the Jupyter server ----------------------------------------------------------------------------------

@dataclass
class JupyterServer:
    """A running ``jupyter lab`` (which also serves Notebook 7's ``/notebooks/`` when it is installed)."""

    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """Call the REST API with the token; returns parsed JSON (or None for an empty answer)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def delete_sessions(self) -> None:
        """Shut down every kernel session (frees kernels; a re-opened path never reuses an old kernel)."""
        for session in self.api("GET", "/api/sessions") or []:
            try:
                self.api("DELETE", f"/api/sessions/{session['id']}")
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def _write_settings(settings_dir: Path) -> None:
    """User settings: no news/update toasts, and every cell always in the DOM (no windowing)."""
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for name, value in files.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def _stop_server(server: JupyterServer) -> None:
    process = server.process
    if process.poll() is None:
        try:
            server.api("POST", "/api/shutdown", timeout=5)
        except Exception:  # noqa: BLE001 - fall through to signals
            pass
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
    try:  # the server's own process group (kernels included), never anything else
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="session")
def jupyter(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """JupyterLab on a free 127.0.0.1 port with a token, isolated dirs, and the simulator's env."""
    base = tmp_path_factory.mktemp("jupyter")
    root = base / "root"
    root.mkdir()
    dirs = {name: base / name.lower() for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                                                  "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR",
                                                  "IPYTHONDIR")}
    for path in dirs.values():
        path.mkdir()
    _write_settings(dirs["JUPYTERLAB_SETTINGS_DIR"])
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}, **sim.env}
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(proxy, None)  # the kernels talk to the simulator on 127.0.0.1 directly
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    # kernels start in the server root (a tmp dir): a relative PYTHONPATH (``PYTHONPATH=.``) would not find this
    # checkout there, and a worktree's kernels would silently import the package's editable install instead
    env["PYTHONPATH"] = os.pathsep.join(str(Path(part).resolve()) for part in
                                        env.get("PYTHONPATH", "").split(os.pathsep) if part)
    port, token = _free_port(), secrets.token_hex(16)
    log = base / "jupyter.log"
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True",
        "--JupyterNotebookApp.expose_app_in_browser=True",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = JupyterServer(f"http://127.0.0.1:{port}", token, root, log, process)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("GET", "/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer within {SERVER_START_TIMEOUT:.0f} s:\n"
                                       f"{server.log_tail()}") from None
                time.sleep(0.1)
        yield server
    finally:
        _stop_server(server)


# -- the browser ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium for the session, driven by Playwright (no ``playwright install``)."""
    executable = _chromium()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


#: State of the single-task widget and of any snapshot card, read in one go (nothing here waits).
READ_WIDGET_JS = r"""() => {
  const text = (root, sel) => { const e = root && root.querySelector(sel); return e ? e.innerText.trim() : null; };
  const card = root => {
    if (!root) return null;
    const fill = root.querySelector('.ew-fill'), badge = root.querySelector('.ew-badge');
    return {state: root.dataset.displayState, badge: badge ? badge.innerText.trim() : null,
            badgeClass: badge ? badge.className : null,
            width: fill ? parseFloat(fill.dataset.progress) : null, fillClass: fill ? fill.className : null,
            fillColour: fill ? getComputedStyle(fill).backgroundColor : null,
            pct: text(root, '.ew-pct'), stats: text(root, '.ew-stats'), why: text(root, '.ew-why'),
            text: root.innerText};
  };
  const w = document.querySelector('.ew-widget');
  const live = w && w.querySelector('.ew-card.ew-live');
  const snap = document.querySelector('.ew-snapshot');
  const outputOf = e => e && e.closest('.jp-OutputArea-output');
  const height = e => e ? e.getBoundingClientRect().height : null;
  return {
    prompts: [...document.querySelectorAll('.jp-Notebook .jp-Cell .jp-InputPrompt')].map(e => e.innerText.trim()),
    widgets: document.querySelectorAll('.ew-widget').length,
    provider: w ? [...w.classList].filter(c => c.startsWith('ew-provider-')).join(' ') : null,
    live: card(live),
    width: live ? card(live).width : null,
    state: live ? live.dataset.displayState : null,
    stats: live ? text(live, '.ew-stats') : null,
    outputHeight: height(outputOf(w)),
    snapshots: document.querySelectorAll('.ew-snapshot').length,
    snapshot: snap ? {
      ...card(snap), taskState: snap.dataset.state, monitorStatus: snap.dataset.monitorStatus,
      inWidget: !!snap.closest('.ew-widget'),
        inHtmlOutput: !!snap.closest('.jp-OutputArea-output.jp-RenderedHTMLCommon'),
      outputHeight: height(outputOf(snap)),
        progress: snap.querySelector('.ew-fill') ? snap.querySelector('.ew-fill').dataset.progress : null,
    } : null,
  };
}"""

#: State of the dashboard: rows by task id (rows are re-sorted live, so never by position), geometry, snapshot.
READ_DASHBOARD_JS = r"""() => {
  const rowOf = r => {
    const cell = c => r.querySelector('.ew-c-' + c), fill = r.querySelector('.ew-fill');
    const box = r.getBoundingClientRect();
    const cols = {};
    for (const c of ['state', 'prov', 'id', 'bar', 'pct', 'done', 'rate', 'eta', 'note']) {
      const e = cell(c); if (!e) continue;
      const b = e.getBoundingClientRect();
      cols[c] = {x: Math.round(b.left), w: Math.round(b.width), shown: b.width > 0, text: e.innerText.trim()};
    }
    return {id: r.dataset.taskId, state: r.dataset.displayState, badge: cols.state ? cols.state.text : null,
            width: fill ? parseFloat(fill.dataset.progress) : null, fillClass: fill ? fill.className : null,
            top: box.top, height: box.height, cols, text: r.innerText.replace(/\s+/g, ' ').trim(),
            visible: box.height > 0};
  };
  const d = document.querySelector('.ew-dashboard');
  const live = d && d.querySelector('.ew-dash');
  const snap = document.querySelector('.ew-dashboard-snapshot');
  const overall = live && live.querySelector('.ew-overall .ew-fill');
  return {
    prompts: [...document.querySelectorAll('.jp-Notebook .jp-Cell .jp-InputPrompt')].map(e => e.innerText.trim()),
    dashboards: document.querySelectorAll('.ew-dashboard').length,
    totals: live ? live.querySelector('.ew-head').innerText.replace(/\s+/g, ' ').trim() : null,
    overall: overall ? parseFloat(overall.dataset.progress) : null,
    overallClass: overall ? overall.className : null,
    overallText: live &&
      live.querySelector('.ew-overall-text') ? live.querySelector('.ew-overall-text').innerText : null,
    rows: live ? [...live.querySelectorAll('.ew-dashboard-row')].map(rowOf) : [],
    snapshot: snap ? {
      inWidget: !!snap.closest('.ew-dashboard'),
        inHtmlOutput: !!snap.closest('.jp-OutputArea-output.jp-RenderedHTMLCommon'),
      text: snap.innerText, totals: snap.querySelector('.ew-head').innerText.replace(/\s+/g, ' ').trim(),
      rows: [...snap.querySelectorAll('.ew-dashboard-row')].map(rowOf),
      folded: snap.querySelector('details.ew-fold')
        ? snap.querySelector('details.ew-fold summary').innerText.trim() : null,
    } : null,
  };
}"""

#: WCAG contrast of every visible text element (and every button/select) inside ``root`` against the background
#: actually painted behind it (ancestors' backgrounds composited, alpha included; color-mix() values parsed).
CONTRAST_JS = r"""(selector) => {
  const parse = c => {
    let m = /^rgba?\(([^)]+)\)/.exec(c);
    if (m) { const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(parseFloat); return [p[0], p[1], p[2],
      p.length > 3 ? p[3] : 1]; }
    m = /^color\(srgb ([^)]+)\)/.exec(c);
    if (m) { const p = m[1].split(/[\s\/]+/).filter(Boolean).map(parseFloat); return [p[0] * 255, p[1] * 255,
      p[2] * 255, p.length > 3 ? p[3] : 1]; }
    return null;
  };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const background = el => {
    const stack = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { stack.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (let i = stack.length - 1; i >= 0; i--) bg = over(stack[i], bg);
    return bg;
  };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
                     return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const out = [];
  for (const root of document.querySelectorAll(selector)) {
    for (const el of root.querySelectorAll('*')) {
      if (!el.getClientRects().length) continue;  // not rendered (display:none, closed <details>)
      const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
      const control = el.matches('button, select');
      if (!own && !control) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || parseFloat(style.opacity) === 0) continue;
      const isSvg = el instanceof SVGElement;
      const fg = parse(isSvg ? style.fill : style.color);
      if (!fg) continue;
      const bg = background(el);
      out.push({text: (el.innerText || el.textContent || el.title || el.className.baseVal ||
        el.className).toString().trim().slice(0, 40),
                tag: el.tagName.toLowerCase(),
                  cls: (el.className.baseVal !== undefined ? el.className.baseVal : el.className)
                    .toString().slice(0, 60),
                ratio: Math.round(ratio(over(fg, bg), bg) * 100) / 100,
                fg: style.color, bg: `rgb(${bg.slice(0, 3).map(Math.round).join(',')})`});
    }
  }
  return out;
}"""

#: Anything cut off inside ``selector``: text overflowing a box without a tooltip, or boxes sticking out of the
#: output area (a scrolling inner box is allowed: what it holds can be scrolled to).
CLIPPED_JS = r"""(selector) => {
  const bad = [];
  for (const root of document.querySelectorAll(selector)) {
    const area = root.closest('.jp-OutputArea-output') || root;
    const edge = area.getBoundingClientRect().right + 1;
    for (const el of root.querySelectorAll('*')) {
      if (!el.getClientRects().length || el.closest('.ew-scroll')) continue;
      const b = el.getBoundingClientRect();
      if (b.width > 0 && b.right > edge) bad.push({what: 'outside', cls: String(el.className).slice(0, 50),
        right: b.right, edge});
      const style = getComputedStyle(el);
      if (el.scrollWidth > el.clientWidth + 1 && style.overflowX !== 'visible' && !el.title && !el.closest('[title]'))
        bad.push({what: 'truncated', cls: String(el.className).slice(0, 50), text: el.innerText.slice(0, 40)});
    }
    for (const row of root.querySelectorAll('.ew-row')) {  // a cell spilling out of its row overlaps the next one
      const r = row.getBoundingClientRect();
      for (const cell of row.children) {
        if (!cell.getClientRects().length) continue;
        const b = cell.getBoundingClientRect();
        if (b.top < r.top - 1 || b.bottom > r.bottom + 1)
          bad.push({what: 'outside its row', cls: String(cell.className), text: cell.innerText.slice(0, 40)});
        for (const badge of cell.querySelectorAll('.ew-badge')) {  // a badge wider than its column is cut off
          const g = badge.getBoundingClientRect();
          if (g.right > b.right + 1) bad.push({what: 'badge cut', text: badge.innerText, right: g.right,
            cell: b.right});
        }
      }
    }
    // cells: an ellipsis only with the full text as the tooltip
    for (const el of root.querySelectorAll('.ew-scroll .ew-row > span')) {
      if (el.scrollWidth > el.clientWidth + 1 && !el.title && el.innerText.trim() &&
        !el.querySelector('.ew-badge, .ew-track'))
        bad.push({what: 'cell truncated', cls: el.className, text: el.innerText.slice(0, 40)});
    }
  }
  return bad;
}"""


@dataclass
class Lab:
    """One test's view of the server and browser: write a notebook, open it, run it, read the DOM."""

    server: JupyterServer
    page: Any
    sim: Simulator
    artifacts: Path
    test_name: str
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    external_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    n_cells: int = 0

    # -- notebooks ------------------------------------------------------------------------------------

    def task_id(self, prefix: str) -> str:
        """A task id unique to this test (the simulator is shared by the whole session)."""
        return f"{prefix}-{self.uid}"

    def write_notebook(self, cells: list[str]) -> str:
        """Write a code-only notebook into the server root (a tmp dir) and return its file name."""
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                           "language": "python"}
        notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        name = f"{re.sub(r'[^A-Za-z0-9_]+', '_', self.test_name)[:40]}_{self.uid}.ipynb"
        nbformat.write(notebook, self.server.root / name)
        self.n_cells = len(cells)
        return name

    def open(self, name: str, ui: str = "lab") -> None:
        """Open the notebook (Lab: in a fresh workspace) and wait until its kernel is connected and idle."""
        if ui == "lab":
            path = f"/lab/workspaces/ws-{self.uid}/tree/{name}"
        elif ui == "notebook":
            path = f"/notebooks/{name}"
        else:
            raise ValueError(ui)
        self.page.goto(f"{self.server.url}{path}?token={self.server.token}", wait_until="domcontentloaded")
        self.page.wait_for_function(
            "n => document.querySelectorAll('.jp-Notebook .jp-Cell').length === n", arg=self.n_cells,
            timeout=OPEN_TIMEOUT * 1000)
        self.page.wait_for_function(
            """() => {
                const app = window.jupyterapp, w = app && app.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
            }""", timeout=OPEN_TIMEOUT * 1000)

    def run_all(self) -> None:
        """Run every cell (fire and forget: the command's promise resolves only when execution ends)."""
        self.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    def wait_cells_done(self, timeout: float = 30.0) -> None:
        """Every prompt shows ``[n]:`` (nothing queued or running)."""
        self.page.wait_for_function(
            """n => {
                const p = [...document.querySelectorAll('.jp-Notebook .jp-Cell .jp-InputPrompt')];
                return p.length === n && p.every(e => /^\\[\\d+\\]:$/.test(e.innerText.trim()));
            }""", arg=self.n_cells, timeout=timeout * 1000)

    # -- reading the page -----------------------------------------------------------------------------

    def sample(self, read: str | Callable[[], Any], until: Callable[[Any], bool], *, timeout: float,
               on_sample: Callable[[Any], None] | None = None, period: float = 0.1) -> list[Any]:
        """Read the page every ``period`` s until ``until(value)`` holds; return every value read.

        ``read`` is a JS function source (evaluated in the page) or a callable (e.g. ``lab.widget_state``).

        Raises ``AssertionError`` (with the last values) if the condition is not met within ``timeout``.
        """
        values: list[Any] = []
        deadline = time.monotonic() + timeout
        while True:
            value = self.page.evaluate(read) if isinstance(read, str) else read()
            values.append(value)
            if on_sample is not None:
                on_sample(value)
            if until(value):
                return values
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout:.0f} s; last values: {values[-3:]!r}")
            time.sleep(period)

    def wait_until(self, predicate: Callable[[], bool], *, timeout: float, period: float = 0.05,
                   message: str = "condition") -> None:
        """Wait (bounded) for a Python-side condition, e.g. on the simulator's request log."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{message} not met within {timeout:.0f} s")
            time.sleep(period)

    def screenshot(self, label: str, selector: str | None = None) -> Path:
        """Save a full-page screenshot (and one of ``selector``, if given) under ``test-artifacts/browser``."""
        stem = f"{re.sub(r'[^A-Za-z0-9_]+', '_', self.test_name)}-{label}"
        target = self.artifacts / f"{stem}.png"
        self.page.screenshot(path=str(target), full_page=True)
        if selector is not None:
            locator = self.page.locator(selector).first
            if locator.count():
                _element_screenshot(locator, self.artifacts / f"{stem}-widget.png")
        return target

    def widget_state(self) -> dict[str, Any]:
        """The single-task widget (``.ew-widget``) and/or its static snapshot, as the page shows them now."""
        return self.page.evaluate(READ_WIDGET_JS)

    def dashboard_state(self) -> dict[str, Any]:
        """The dashboard (``.ew-dashboard``) rows keyed by task id, and/or its static snapshot."""
        return self.page.evaluate(READ_DASHBOARD_JS)

    @staticmethod
    def assert_advancing(values: list[float], *, min_distinct: int, what: str = "bar width") -> None:
        """``values`` (sampled over time) never go down and take at least ``min_distinct`` distinct values."""
        assert values, f"no {what} was ever read"
        assert all(b >= a for a, b in zip(values, values[1:], strict=False)), f"{what} went down: {values!r}"
        distinct = sorted(set(values))
        assert len(distinct) >= min_distinct, \
            f"{what} took only {len(distinct)} distinct values over time (want >= {min_distinct}): {distinct!r}"

    def contrast(self, selector: str) -> list[dict[str, Any]]:
        """Contrast ratio of every visible text element and control in ``selector`` (see ``CONTRAST_JS``)."""
        return self.page.evaluate(CONTRAST_JS, selector)

    def clipped(self, selector: str) -> list[dict[str, Any]]:
        """Everything cut off in ``selector`` (see ``CLIPPED_JS``)."""
        return self.page.evaluate(CLIPPED_JS, selector)

    def set_theme(self, theme: str) -> None:
        """Switch JupyterLab's theme (``JupyterLab Light`` / ``JupyterLab Dark``) and wait until it applies."""
        light = "true" if "Light" in theme else "false"
        self.page.evaluate("t => { window.jupyterapp.commands.execute('apputils:change-theme', {theme: t}); }", theme)
        self.page.wait_for_function("l => document.body.dataset.jpThemeLight === l", arg=light, timeout=30_000)
        self.page.wait_for_timeout(300)  # the theme's stylesheet is swapped in after the attribute

    def docs_screenshot(self, name: str, selector: str | None = None, *, full: bool = False) -> Path:
        """A screenshot for the README: always under test-artifacts; also under docs/ with EW_UPDATE_DOCS=1."""
        target = self.artifacts / f"docs-{name}.png"
        if selector is not None and not full:
            element = self.page.locator(selector).first
            viewport = self.page.viewport_size
            height = self.page.evaluate("s => document.querySelector(s)?.getBoundingClientRect().height ?? 0",
                                        selector)
            tall = viewport is not None and height + 300 > viewport["height"]
            if tall:  # the whole element, not the part the viewport shows with the status bar across it
                self.page.set_viewport_size({"width": viewport["width"], "height": int(height) + 400})
                self.page.wait_for_timeout(300)
            try:
                _element_screenshot(element, target)
            finally:
                if tall:
                    self.page.set_viewport_size(viewport)
        else:
            self.page.screenshot(path=str(target), full_page=True)
        if os.environ.get("EW_UPDATE_DOCS") == "1":
            docs = self.artifacts.parent.parent / "docs" / "screenshots"
            docs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, docs / f"{name}.png")
        return target

    def page_text(self) -> str:
        """Everything the page holds: its serialised DOM plus the rendered text."""
        return self.page.content() + "\n" + self.page.evaluate("() => document.body.innerText")


def _element_screenshot(locator: Any, target: Path, *, attempts: int = 8) -> None:
    """Screenshot one element of a live view.

    A live view redraws its HTML up to 4 times a second, so the element found a moment ago may be replaced while
    Playwright waits for it to be stable ("Element is not attached to the DOM"); find it again and retry.
    """
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(attempts):
        try:
            locator.screenshot(path=str(target), timeout=10_000)
            return
        except PlaywrightError as exc:
            if "not attached" not in str(exc) or attempt == attempts - 1:
                raise


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return True  # data:, blob:, about: never leave the machine
    return parts.hostname in LOCAL_HOSTS


@pytest.fixture
def lab(request: pytest.FixtureRequest, browser: Any, jupyter: JupyterServer, sim: Simulator,
        artifacts_dir: Path) -> Iterator[Lab]:
    """A fresh browser context and page for one test; on teardown: failure dump, sessions deleted,
    and the page must not have contacted anything but 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    helper = Lab(jupyter, page, sim, artifacts_dir, request.node.name)
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)
    for stale in artifacts_dir.glob(f"{stem}-*"):  # artifacts of an earlier run of this test
        stale.unlink()
    page.on("request", lambda r: None if _is_local(r.url) else helper.external_requests.append(r.url))
    page.on("websocket", lambda ws: None if _is_local(ws.url) else helper.external_requests.append(ws.url))
    page.on("console", lambda m: helper.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: helper.console_errors.append(f"pageerror: {exc}"))
    page.on("response", lambda r: helper.console_errors.append(f"HTTP {r.status} {r.request.method} "
                                                               f"{r.url.split('?')[0]}") if r.status >= 400 else None)
    try:
        yield helper
    finally:
        report = getattr(request.node, "rep_call", None)
        if helper.console_errors:
            (artifacts_dir / f"{stem}-console.txt").write_text("\n".join(helper.console_errors))
        if report is not None and report.failed:
            try:
                page.screenshot(path=str(artifacts_dir / f"{stem}-FAILED.png"), full_page=True)
                (artifacts_dir / f"{stem}-FAILED.html").write_text(page.content())
            except Exception:  # noqa: BLE001 - diagnostics only
                pass
            (artifacts_dir / f"{stem}-FAILED.log").write_text(
                f"console errors: {helper.console_errors!r}\n\nserver log:\n{jupyter.log_tail(200)}")
        context.close()
        jupyter.delete_sessions()
    assert not helper.external_requests, f"the page contacted hosts other than 127.0.0.1: " \
                                         f"{helper.external_requests!r}"
    widget_errors = [e for e in helper.console_errors if "widget" in e.lower()]
    assert not widget_errors, f"widget errors in the browser console: {widget_errors!r}"
