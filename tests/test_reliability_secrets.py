"""Secret scanning and HTML escaping.

The simulator runs with *canary* credentials (recognisable fake AK/SK, IAM token, temporary AK/SK with a
security token, Qianfan AK/SK) and serves a finished Qianfan task whose ``downloadUrl`` carries a signed
``authorization=`` query. Everything a user, a log file or a committed notebook can see is then searched for
them: every mime bundle and widget state of a freshly executed notebook (and the saved ``.ipynb``), the
``export_widgets`` logs at DEBUG (the signers log their canonical requests there), exception messages,
reprs, DataFrames and CSV exports. Zero hits allowed.

Task ids, paths and error messages come from users and servers: injected ``<script>``/``<img onerror>`` must
come out escaped in every HTML output (widget, dashboard, snapshots, history and filter tables).
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import logging
import random
from datetime import datetime, timezone
from urllib.parse import urlsplit

import ipywidgets as widgets
import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from export_widgets import ModelArtsClient, QianfanClient, frames, render, watch_many
from export_widgets.errors import ExportWidgetsError
from export_widgets.monitor import ExportMonitor, MonitorGroup
from export_widgets.simulator import FakeClock, Fault, SimulatorCredentials, TaskSpec, serve

CANARY = SimulatorCredentials(
    modelarts_ak="AKCANARYLEAKCHECK001",
    modelarts_sk="SKCANARY-modelarts-secret-must-never-show-01",
    token="TOKENCANARY-iam-token-must-never-show-0123456789",
    temp_ak="AKCANARYTEMPLEAK002",
    temp_sk="SKCANARY-temporary-secret-must-never-show-02",
    security_token="STSCANARY-security-token-must-never-show-03",
    qianfan_ak="qfakcanary0123456789leakcheck0001",
    qianfan_sk="qfskcanary-qianfan-secret-must-never-show-04",
)

MA_DONE, MA_FAIL, QF_DONE = "MA-done", "MA-fail", "task-done"


def secrets_of(download_url: str | None = None) -> list[str]:
    """Every string that must never be shown: keys, tokens, and the signed URL's query and signature."""
    found = [CANARY.modelarts_ak, CANARY.modelarts_sk, CANARY.token, CANARY.temp_ak, CANARY.temp_sk,
             CANARY.security_token, CANARY.qianfan_ak, CANARY.qianfan_sk,
             "authorization=", "authorization%3D", "bce-auth-v1/", "bce-auth-v1%2F", "Signature=",
             "SDK-HMAC-SHA256 Access"]
    if download_url:
        query = urlsplit(download_url).query
        assert query.startswith("authorization="), download_url
        found += [query, query.rsplit("%2F", 1)[-1]]  # the whole query and its signature hex
    return found


def assert_clean(text: str, where: str, download_url: str | None = None) -> None:
    for secret in secrets_of(download_url):
        assert secret not in text, f"{secret!r} leaked into {where}: …{_around(text, secret)}…"


def _around(text: str, needle: str, width: int = 80) -> str:
    at = text.find(needle)
    return text[max(0, at - width): at + len(needle) + width]


def canary_tasks(clock_now: float) -> list[TaskSpec]:
    return [
        TaskSpec("modelarts", MA_DONE, duration=5, total_samples=500, created_at=clock_now),
        TaskSpec("modelarts", MA_FAIL, duration=5, outcome="fail", fail_at=40, created_at=clock_now,
                 error_message="OBS access denied for AKCANARYLEAKCHECK001"),  # a server echoing a key
        TaskSpec("qianfan", QF_DONE, duration=5, total_samples=300, created_at=clock_now),
    ]


@pytest.fixture
def canary_sim():
    clock = FakeClock()
    with serve(canary_tasks(clock.now()), clock=clock, credentials=CANARY) as sim:
        yield sim
        assert not sim.errors


def drive(sim, monitor):
    while (delay := monitor.poll_once()) is not None:
        sim.clock.advance(delay)


def monitors_for(sim, **client_kwargs):
    """One monitor per auth mode: AK/SK, temporary AK/SK + security token, IAM token, Qianfan AK/SK."""
    kw = dict(start=False, clock=sim.clock.now, rng=random.Random(0))
    ma = sim.modelarts_client(**client_kwargs)
    temp = sim.modelarts_client(**{"ak": CANARY.temp_ak, "sk": CANARY.temp_sk,
                                   "security_token": CANARY.security_token, **client_kwargs})
    token = sim.modelarts_client(token=CANARY.token,
                                 **{k: v for k, v in client_kwargs.items() if k not in ("ak", "sk")})
    qf = sim.qianfan_client(**client_kwargs)
    return [ExportMonitor(ma, MA_DONE, sim.dataset_id, **kw), ExportMonitor(temp, MA_FAIL, sim.dataset_id, **kw),
            ExportMonitor(token, MA_DONE, sim.dataset_id, **kw), ExportMonitor(qf, QF_DONE, **kw)]


# -- logs ---------------------------------------------------------------------------------------------------

def test_debug_logs_never_carry_a_secret(canary_sim, caplog):
    """The signers log canonical requests at DEBUG; those (and everything else logged) hold no key, token or
    signature, whatever the auth mode and whatever goes wrong."""
    caplog.set_level(logging.DEBUG)  # the root: export_widgets, urllib3 and the simulator alike
    monitors = monitors_for(canary_sim)
    for monitor in monitors:
        drive(canary_sim, monitor)
    assert all(m.status == "finished" for m in monitors)
    download_url = monitors[-1].latest.download_url
    for fault in (Fault("rate_limit"), Fault("auth_revoked"), Fault("html"), Fault("drop"),
                  Fault("error_in_200", message="bad key qfskcanary-qianfan-secret-must-never-show-04")):
        canary_sim.set_faults("*", [fault])
        for monitor in monitors_for(canary_sim, timeout=(2, 1)):
            monitor.poll_once()
    canary_sim.clear_faults()
    for bad in (dict(sk="SKCANARY-wrong-secret-must-never-show-99"),
                dict(clock=lambda: datetime(2020, 1, 1, tzinfo=timezone.utc))):
        for monitor in monitors_for(canary_sim, **bad)[::3]:
            monitor.poll_once()
            assert monitor.status == "error"
    signer_lines = [r for r in caplog.records if "canonical request" in r.getMessage()]
    assert len(signer_lines) >= 10  # the canonical requests were logged, and we looked at them
    assert any("x-security-token" in r.getMessage() for r in signer_lines)  # the header is named...
    assert_clean(caplog.text, "the DEBUG log", download_url)  # ...but its value is not there
    assert_clean("\n".join(r.getMessage() for r in caplog.records), "log records", download_url)


# -- messages, reprs, frames, CSV ---------------------------------------------------------------------------

def test_messages_reprs_frames_and_csv_hold_no_secret(canary_sim, tmp_path):
    from export_widgets.dashboard import ExportDashboard
    from export_widgets.textview import TextView
    from export_widgets.widget import ExportStatusWidget

    monitors = monitors_for(canary_sim)
    views = [ExportStatusWidget(m, min_redraw_interval=0) for m in monitors]
    group = MonitorGroup(monitors)
    dashboard = ExportDashboard(group, min_redraw_interval=0)
    lines = io.StringIO()
    TextView(monitors, stream=lines)
    for monitor in monitors:
        drive(canary_sim, monitor)
    download_url = monitors[-1].latest.download_url
    assert download_url and "authorization=" in download_url  # the raw URL is there for whoever asks

    texts: dict[str, str] = {}
    errors = []
    for fault in (Fault("rate_limit"), Fault("auth_revoked"), Fault("html"), Fault("reset_mid_body"),
                  Fault("malformed_json"), Fault("not_found"), Fault("error_in_200", code="AccessDenied",
                                                                     message=f"denied for {CANARY.qianfan_ak}")):
        canary_sim.set_faults("*", [fault])
        for monitor in monitors_for(canary_sim, timeout=(2, 1)):
            monitor.poll_once()
            errors.append(monitor.error or monitor.last_poll_error)
            texts[f"history of a failed poll ({fault.kind})"] = monitor.history_frame().to_csv()
    canary_sim.clear_faults()
    with pytest.raises(ExportWidgetsError) as info:
        canary_sim.modelarts_client(sk="SKCANARY-wrong-secret-must-never-show-99").get_export_task(
            canary_sim.dataset_id, MA_DONE)
    errors.append(info.value)
    texts["errors"] = "\n".join(f"{e!s} {e!r}" for e in errors)
    for monitor in monitors:
        client = monitor.client
        texts[f"reprs {monitor.task_id}"] = " ".join(repr(x) for x in (
            monitor, monitor.latest, monitor.history, client, client.credentials, client.session.auth,
            dict(client.session.headers), monitor.figures()))
        texts[f"str task {monitor.task_id}"] = str(monitor.latest)
    texts["summary csv"] = frames.summary([m.latest for m in monitors]).to_csv()
    texts["summary repr"] = repr(frames.summary([m.latest for m in monitors]))
    texts["summary html"] = frames.summary([m.latest for m in monitors]).to_html()
    texts["dashboard frame"] = group.summary().to_csv() + repr(group) + repr(dashboard)
    texts["history frames"] = group.history_frame().to_csv()
    texts["text view"] = lines.getvalue()
    for i, view in enumerate(views):
        html_, text = view.snapshot()
        texts[f"widget {i} snapshot"] = html_ + text + repr(view)
        texts[f"widget {i} view state"] = json.dumps(view.view_state())
        texts[f"widget {i} csv"] = view.export_csv(tmp_path / f"w{i}.csv").read_text()
        texts[f"widget {i} bundle"] = json.dumps(view._repr_mimebundle_(), default=str)
    texts["dashboard snapshot"] = "".join(dashboard.snapshot())
    texts["dashboard csv"] = dashboard.export_csv(tmp_path / "d.csv").read_text()
    texts["all widget state"] = json.dumps(widgets.Widget.get_manager_state(), default=str)
    for where, text in texts.items():
        assert_clean(text, where, download_url)
    assert "AKCANARYLEAKCHECK001" not in monitors[1].latest.error_message  # masked when the server echoes it


def test_bad_endpoint_errors_do_not_echo_embedded_credentials():
    for endpoint in (f"https://{CANARY.modelarts_ak}:{CANARY.modelarts_sk}@modelarts.example.com",
                     f"https://modelarts.example.com/?token={CANARY.token}"):
        with pytest.raises(ExportWidgetsError) as info:
            ModelArtsClient(project_id="p" * 32, endpoint=endpoint, ak="A" * 20, sk="S" * 40, environ={})
        assert_clean(str(info.value), "an endpoint error")
        with pytest.raises(ExportWidgetsError) as info:
            QianfanClient(ak="A" * 32, sk="S" * 32, endpoint=endpoint, environ={})
        assert_clean(str(info.value), "an endpoint error")


def test_magic_outputs_hold_no_secret(canary_sim, capsys, monkeypatch):
    """%export_status in a real shell: --once, --wait, --list, failures; outputs and stored values."""
    for name, value in canary_sim.env.items():
        monkeypatch.setenv(name, value)
    canary_sim.clock.advance(60)  # every task has ended: --wait returns at once
    config = Config()
    config.HistoryAccessor.enabled = False
    shell = InteractiveShell(config=config)
    shell.run_line_magic("load_ext", "export_widgets")
    try:
        ep = f"--endpoint {canary_sim.url} --dataset {canary_sim.dataset_id}"
        cells = [
            f"%export_status {QF_DONE} --interval 0.05 --wait -o q",
            f"%export_status --provider modelarts {ep} {MA_DONE} {MA_FAIL} --interval 0.05 --wait -o g",
            f"%export_status --provider modelarts {ep} {MA_DONE} {QF_DONE} --once -o snap",
            f"%export_status --list {ep} -o listed",
            f"%export_status --provider modelarts {ep} NoSuchTask",
            "q", "q.latest", "q.history_frame()", "snap", "listed", "g", "g.summary()",
            "print(q.latest)", "q.error",
        ]
        for cell in cells:
            shell.run_cell(cell)
        monkeypatch.setenv("QIANFAN_SECRET_KEY", "qfskcanary-wrong-secret-must-never-show-98")
        shell.run_cell(f"%export_status {QF_DONE} --once")
        out = capsys.readouterr()
        ns = shell.user_ns
        download_url = ns["q"].latest.download_url
        text = out.out + out.err + repr(ns["q"]) + ns["q"].history_frame().to_csv() + ns["snap"].to_csv() + \
            ns["listed"].to_csv() + ns["g"].summary().to_csv()
        assert "SUCCEEDED" in text and "UsageError" in out.err
        assert_clean(text, "the magic's outputs", download_url)
    finally:
        shell.run_line_magic("unload_ext", "export_widgets")


# -- a notebook, executed and saved --------------------------------------------------------------------------

NOTEBOOK_CELLS = [
    # credentials come from the environment, so the notebook's own source holds none of them
    """import json, logging, os, sys
from export_widgets.simulator import FakeClock, SimulatorCredentials, TaskSpec, Simulator
handler = logging.StreamHandler(sys.stdout)
for name in ("export_widgets", "urllib3"):
    logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger(name).addHandler(handler)
creds = SimulatorCredentials(**json.loads(os.environ["EW_CANARY"]))
sim = Simulator([TaskSpec("modelarts", "MA-done", duration=0.3), TaskSpec("qianfan", "task-done", duration=0.3),
                 TaskSpec("modelarts", "MA-fail", duration=0.3, outcome="fail", fail_at=40)],
                credentials=creds).start()
os.environ.update(sim.env)
print("simulator up")""",
    "%load_ext export_widgets",
    "%export_status task-done --interval 0.05 --wait -o q",
    "%export_status --provider modelarts --endpoint {url} --dataset {ds} MA-done MA-fail --interval 0.05 --wait -o g",
    "%export_status --provider modelarts --endpoint {url} --dataset {ds} MA-done task-done --once",
    """from export_widgets import watch
from export_widgets.widget import ExportStatusWidget
temp = sim.modelarts_client(ak=creds.temp_ak, sk=creds.temp_sk, security_token=creds.security_token)
w = ExportStatusWidget(watch(temp, "MA-done", sim.dataset_id, interval=0.05))
display(w)
w.monitor.wait(30); w.finalize()""",
    """tok = sim.modelarts_client(token=creds.token)
tok.get_export_task(sim.dataset_id, "MA-done")""",
    "q.latest",
    "q.history_frame()",
    "_ = w.export_csv('history.csv')",
    "_ = open('download_url.txt', 'w').write(q.latest.download_url)  # for the scanner, not shown",
    "%export_status --provider modelarts --endpoint {url} --dataset {ds} NoSuchTask",
    """from export_widgets import QianfanClient
QianfanClient(ak=creds.qianfan_ak, sk=creds.qianfan_sk[::-1], endpoint=sim.url).get_export_task("task-done")""",
    "print('secrets notebook OK')",
]


@pytest.mark.slow
def test_an_executed_and_saved_notebook_holds_no_secret(tmp_path, monkeypatch):
    """The four shipped notebooks are scanned by tests/test_notebooks.py; this focused one adds DEBUG logs,
    temporary credentials, an IAM token, failures and a CSV export, all in one real kernel."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("EW_CANARY", json.dumps(dataclasses.asdict(CANARY)))
    notebook = nbformat.v4.new_notebook()
    url_ds = {"url": "{sim.url}", "ds": "{sim.dataset_id}"}  # IPython expands {expr} in magic lines
    for source in NOTEBOOK_CELLS:
        cell = nbformat.v4.new_code_cell(source.replace("{url}", url_ds["url"]).replace("{ds}", url_ds["ds"]))
        if "NoSuchTask" in source or "[::-1]" in source:
            cell.metadata["tags"] = ["raises-exception"]
        notebook.cells.append(cell)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    saved = tmp_path / "secrets.ipynb"
    nbformat.write(notebook, saved)
    download_url = (tmp_path / "download_url.txt").read_text()
    assert download_url.startswith("http://127.0.0.1:") and "authorization=" in download_url  # served by the sim
    text = saved.read_text()
    assert "secrets notebook OK" in text and "canonical request" in text  # it ran, and logged at DEBUG
    assert "x-security-token" in text and "ModelArts.4359" in text and "SignatureDoesNotMatch" in text
    assert_clean(text, "the saved notebook", download_url)
    bundles = [json.dumps(o) for c in notebook.cells for o in c.get("outputs", [])]
    assert len(bundles) > 10
    for bundle in bundles:
        assert_clean(bundle, "an output bundle", download_url)
    for path in tmp_path.iterdir():
        if path.name not in ("download_url.txt",) and path.is_file():
            assert_clean(path.read_text(errors="replace"), path.name, download_url)


# -- HTML escaping ------------------------------------------------------------------------------------------

PAYLOADS = ["<script>alert(1)</script>", "<img/src=x/onerror=alert(2)>", '"><svg/onload=alert(3)>']
EVIL_QF_ID = 'task-"><svg/onload=alert(3)><script>alert(1)</script>'  # no whitespace: a valid Qianfan id


def assert_escaped(markup: str, where: str) -> None:
    for payload in PAYLOADS:
        assert payload not in markup, f"unescaped {payload!r} in {where}: …{_around(markup, payload)}…"
    for tag in ("<script", "<img", "onload=alert(3)><", "<svg/"):
        assert tag not in markup.lower(), f"{tag!r} in {where}"


def test_injected_markup_is_escaped_in_every_html_output(empty_sim):
    from export_widgets.dashboard import ExportDashboard
    from export_widgets.widget import ExportStatusWidget, filters_table_html, history_table_html

    sim = empty_sim
    conditions = [{"label_list": {"labels": [{"name": PAYLOADS[0], "type": 1, "property": {PAYLOADS[1]: ["x"]}}]},
                   "sample_dir": PAYLOADS[2]}]
    sim.add_task(TaskSpec("modelarts", "MA-evil", duration=10, outcome="fail", fail_at=50,
                          error_code=PAYLOADS[2], error_message=PAYLOADS[1] + PAYLOADS[0],
                          path=f"/obs/{PAYLOADS[0]}/", export_params={"search_conditions": conditions}))
    sim.add_task(TaskSpec("qianfan", EVIL_QF_ID, duration=10, path=f"bos:/b/{PAYLOADS[1]}"))
    sim.add_task(TaskSpec("qianfan", "task-evil-error", duration=10))
    sim.set_faults("task-evil-error", [Fault("error_in_200", code="DatasetBusy", message=" ".join(PAYLOADS)),
                                       Fault("error_in_200", code="AccessDenied", message=" ".join(PAYLOADS))])
    kw = dict(start=False, clock=sim.clock.now, rng=random.Random(0))
    monitors = [ExportMonitor(sim.modelarts_client(), "MA-evil", sim.dataset_id, **kw),
                ExportMonitor(sim.qianfan_client(), EVIL_QF_ID, **kw),
                ExportMonitor(sim.qianfan_client(), "task-evil-error", **kw)]
    views = [ExportStatusWidget(m, min_redraw_interval=0) for m in monitors]
    dashboard = ExportDashboard(MonitorGroup(monitors), min_redraw_interval=0)
    markups: dict[str, str] = {}

    def collect(tag: str) -> None:
        for i, view in enumerate(views):
            view.toggle_details(True)  # the details are drawn only while open
            state = view.view_state()
            markups[f"{tag} widget {i} view state"] = json.dumps(state)
            markups[f"{tag} widget {i} html"] = " ".join(
                w.value for w in _descendants(view) if isinstance(w, widgets.HTML))
            markups[f"{tag} widget {i} history"] = history_table_html(view.monitor)
            markups[f"{tag} widget {i} filters"] = filters_table_html(view.monitor.latest)
        markups[f"{tag} dashboard"] = " ".join(w.value for w in _descendants(dashboard) if isinstance(w, widgets.HTML))

    monitors[2].poll_once()  # the escaped error shows as the last poll's error
    for m in monitors[:2]:
        m.poll_once()
    sim.clock.advance(3)
    collect("live")
    for monitor in monitors:
        drive(sim, monitor)
    assert monitors[0].latest.state.value == "FAILED" and monitors[1].latest.state.value == "SUCCEEDED"
    assert monitors[2].status == "error"
    collect("ended")
    for i, view in enumerate(views):
        markups[f"widget {i} snapshot"] = view.snapshot()[0]
        markups[f"render snapshot {i}"] = render.snapshot_html(view.monitor)
    markups["dashboard snapshot"] = dashboard.snapshot()[0]
    markups["summary html"] = frames.summary([m.latest for m in monitors]).to_html()
    for where, markup in markups.items():
        assert_escaped(markup, where)
    everything = " ".join(markups.values())
    for payload in PAYLOADS:  # the text is shown, escaped, not dropped
        assert html.escape(payload, quote=True) in everything or html.escape(payload, quote=False) in everything


def test_group_of_evil_ids_from_watch_many(empty_sim):
    """Same through watch_many and the dashboard's text and HTML totals."""
    from export_widgets.dashboard import ExportDashboard

    empty_sim.add_task(TaskSpec("qianfan", EVIL_QF_ID, duration=1))
    client = empty_sim.qianfan_client()
    group = watch_many([(client, EVIL_QF_ID)], start=False, clock=empty_sim.clock.now)
    group[0].poll_once()
    dashboard = ExportDashboard(group, min_redraw_interval=0)
    assert_escaped(" ".join(w.value for w in _descendants(dashboard) if isinstance(w, widgets.HTML)), "dashboard")
    assert empty_sim.requests[-1].task_id == EVIL_QF_ID  # the id went out intact, in the JSON body
    assert empty_sim.requests[-1].path == "/v2/dataset"


def _descendants(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _descendants(child)
