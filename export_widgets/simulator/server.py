"""The loopback HTTP server around :class:`.app.SimulatorApp`, and the :func:`serve` context manager.

Speed matters because monitors and tests poll it hundreds of times: HTTP/1.1 keep-alive, ``TCP_NODELAY``,
and each answer leaves in one ``send`` (status line, headers and body together), so no request waits on
Nagle + delayed ACK. Every wait a fault asks for is an ``Event.wait``, so :meth:`Simulator.stop` is prompt.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import Request, SimulatorApp
from .clock import Clock
from .credentials import DEFAULT_PROJECT_ID, SimulatorCredentials
from .exportfile import ExportFile
from .faults import Fault
from .requestlog import RequestLog
from .scenario import DEFAULT_DOWNLOAD_TTL, CreatePolicy, Scenario, TaskSpec
from .vendor import Response, reason

__all__ = ["ENDPOINT_ENV", "Simulator", "SimulatorServer", "serve"]

log = logging.getLogger(__name__)

#: Env var the ``export-widgets`` CLI reads for the ModelArts base URL (set to the simulator's URL).
ENDPOINT_ENV = "EXPORT_WIDGETS_MODELARTS_ENDPOINT"
_LOOPBACK = ("127.0.0.1", "localhost")
_MAX_BODY = 1 << 20
_QUERY = re.compile(r"(\S)\?\S*")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive by default
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: SimulatorServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection_id = self.server.register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        # Request lines carry queries, and a download's query is its signature: log the path only.
        safe = tuple(_QUERY.sub(r"\1?***", arg) if isinstance(arg, str) else arg for arg in args)
        log.debug("%s " + format, self.client_address[0], *safe)

    def _serve(self) -> None:
        length_text = self.headers.get("Content-Length", "0") or "0"
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower() or not length_text.isdigit() \
                or int(length_text) > _MAX_BODY:
            self.close_connection = True
            self._write(Response(400, (("Content-Type", "text/plain"),), b"bad or oversized request body\n"))
            return
        body = self.rfile.read(int(length_text))
        request = Request(self.command, self.path, tuple(self.headers.items()), body, self.connection_id)
        try:
            response = self.server.app.handle(request)
        except Exception as exc:  # a simulator bug: answer 500 and keep it for the tests to see
            self.server.errors.append(exc)
            log.debug("simulator error", exc_info=True)
            response = Response(500, (("Content-Type", "text/plain"),), b"simulator internal error\n")
        if self.command == "HEAD":
            response = dataclasses.replace(response, head_only=True)  # headers only, whatever the route
        self._deliver(response)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def _deliver(self, response: Response) -> None:
        stopping = self.server.stop_event
        if response.delay and stopping.wait(response.delay):
            self.close_connection = True  # shutting down: give up on the slow answer
            return
        if response.action == "drop":
            self.close_connection = True
            return
        if response.action == "hold":
            stopping.wait(response.hold)
            self.close_connection = True
            return
        if response.action == "reset_mid_body":
            data = response.to_bytes(reason(response.status))
            cut = len(data) - len(response.body) + len(response.body) // 2
            self.close_connection = True
            self._write_raw(data[:cut])
            # Linger 0 turns close() into a TCP RST: the client sees a reset, not a clean EOF.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if response.stream is not None:
            self._stream(response)
            return
        self._write(response)

    def _stream(self, response: Response) -> None:
        """Send a streamed body piece by piece; a ``cut_after`` closes the connection early (a clean FIN, so
        the client receives exactly that many bytes and then sees the body end short)."""
        if not self._write_raw(response.head_bytes(reason(response.status))):
            return
        if response.head_only or response.stream is None:
            return
        left = response.cut_after
        for piece in response.stream():
            if left is not None and len(piece) >= left:
                self._write_raw(piece[:left])
                self.close_connection = True
                return
            if not self._write_raw(piece):
                return  # the client went away
            if left is not None:
                left -= len(piece)
            if response.chunk_delay and self.server.stop_event.wait(response.chunk_delay):
                self.close_connection = True  # shutting down
                return

    def _write(self, response: Response) -> None:
        self._write_raw(response.to_bytes(reason(response.status)))

    def _write_raw(self, data: bytes) -> bool:
        """Send ``data``; False (and the connection marked for closing) if the client has gone away."""
        try:
            self.wfile.write(data)  # unbuffered socket writer: one sendall
        except OSError:
            self.close_connection = True  # the client went away (e.g. it timed out first)
            return False
        return True


class SimulatorServer(ThreadingHTTPServer):
    """A threading HTTP server bound to 127.0.0.1 only, quiet, that can drop its open connections on stop."""

    daemon_threads = True

    def __init__(self, app: SimulatorApp, port: int = 0, host: str = "127.0.0.1") -> None:
        if host not in _LOOPBACK:
            raise ValueError(f"the simulator listens on 127.0.0.1 only, not {host!r}")
        self.app = app
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self._connections: dict[int, socket.socket] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def register(self, connection: socket.socket) -> int:
        """Track an accepted connection; returns its id."""
        with self._lock:
            number = next(self._ids)
            self._connections[number] = connection
            return number

    def unregister(self, connection: socket.socket) -> None:
        """Forget a closed connection."""
        with self._lock:
            for number, sock in list(self._connections.items()):
                if sock is connection:
                    del self._connections[number]

    def close_connections(self) -> None:
        """Shut down every open connection, so idle keep-alive handler threads end now."""
        with self._lock:
            sockets = list(self._connections.values())
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)  # quiet: clients vanish


class Simulator:
    """A running (or startable) simulator: the handle ``serve()`` yields.

    Attributes: ``url``, ``project_id``, ``dataset_id``, ``env``, ``clock``, ``token``, ``credentials``,
    ``tasks``, ``requests``, ``app``, ``create_policy``. Use as a context manager or call :meth:`start` /
    :meth:`stop`.

    ``create`` (a :class:`.CreatePolicy` or its dict) says what create requests start -- the template of new
    tasks, a ``running_limit``, a ``read_lag``; ``download_ttl`` how long a Qianfan ``downloadUrl`` stays valid
    (scenario seconds). A ``scenario`` brings its own ``create``/``download_ttl`` unless these are given.
    Tests read the results with :meth:`request_count` / :meth:`request_counts`, :meth:`download_url_for` and
    :meth:`export_file`, and inject faults with :meth:`set_faults` (download kinds: ``download_cut``,
    ``download_error``, ``download_slow``, ``download_no_range``).
    """

    def __init__(
        self,
        tasks: Iterable[TaskSpec | Mapping[str, Any]] | None = None,
        *,
        port: int = 0,
        clock: Clock | None = None,
        scenario: Scenario | None = None,
        wall_clock: Callable[[], float] | None = None,
        project_id: str = DEFAULT_PROJECT_ID,
        credentials: SimulatorCredentials | None = None,
        create: CreatePolicy | Mapping[str, Any] | None = None,
        download_ttl: int | None = None,
    ) -> None:
        if tasks is not None and scenario is not None:
            raise ValueError("pass tasks= or scenario=, not both")
        specs = scenario.scaled_tasks() if scenario is not None else tasks
        if create is None and scenario is not None:
            create = scenario.scaled_create()
        if download_ttl is None:
            download_ttl = scenario.download_ttl if scenario is not None else DEFAULT_DOWNLOAD_TTL
        self.scenario = scenario
        self.app = SimulatorApp(specs, clock=clock, wall_clock=wall_clock, project_id=project_id,
                                credentials=credentials, create=create, download_ttl=download_ttl)
        self._port = port
        self._server: SimulatorServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind and serve in a daemon thread. Raises ``OSError`` if the port is taken."""
        if self._server is not None:
            return self
        self._server = SimulatorServer(self.app, port=self._port)
        self.app.public_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"export-widgets-simulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: cut fault waits short, close open connections, release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop_event.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server else "stopped"
        return f"Simulator({where}, {len(self.app.tasks)} tasks)"

    # -- addresses and credentials ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() or use serve()")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base URL for both APIs, e.g. ``http://127.0.0.1:54321``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def project_id(self) -> str:
        """The ModelArts project id this simulator serves."""
        return self.app.project_id

    @property
    def dataset_id(self) -> str:
        """The default ModelArts dataset id."""
        return self.app.dataset_id

    @property
    def credentials(self) -> SimulatorCredentials:
        """The fake keys the simulator accepts."""
        return self.app.credentials

    @property
    def token(self) -> str:
        """An IAM token the simulator accepts in ``X-Auth-Token``."""
        return self.app.credentials.token

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point the clients and the CLI at this simulator (fake credentials)."""
        creds = self.credentials
        return {
            "HUAWEICLOUD_SDK_AK": creds.modelarts_ak,
            "HUAWEICLOUD_SDK_SK": creds.modelarts_sk,
            "HUAWEICLOUD_SDK_PROJECT_ID": self.project_id,
            "QIANFAN_ACCESS_KEY": creds.qianfan_ak,
            "QIANFAN_SECRET_KEY": creds.qianfan_sk,
            "QIANFAN_CONSOLE_API_BASE_URL": self.url,
            ENDPOINT_ENV: self.url,
        }

    def modelarts_client(self, **kwargs: Any) -> Any:
        """A ``ModelArtsClient`` for this simulator (its AK/SK unless ``token=`` is given; kwargs override)."""
        # Imported here, not at the top: keeps the simulator import light.
        from ..providers import ModelArtsClient

        args: dict[str, Any] = {"project_id": self.project_id, "endpoint": self.url, "environ": {}}
        if "token" not in kwargs:
            args.update(ak=self.credentials.modelarts_ak, sk=self.credentials.modelarts_sk)
        args.update(kwargs)
        return ModelArtsClient(**args)

    def qianfan_client(self, **kwargs: Any) -> Any:
        """A ``QianfanClient`` for this simulator."""
        from ..providers import QianfanClient

        args: dict[str, Any] = {"ak": self.credentials.qianfan_ak, "sk": self.credentials.qianfan_sk,
                                "endpoint": self.url, "environ": {}}
        args.update(kwargs)
        return QianfanClient(**args)

    # -- scenario control -------------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The scenario clock (a ``FakeClock`` when one was passed in)."""
        return self.app.clock

    @property
    def tasks(self) -> dict[str, TaskSpec]:
        """``{task_id: TaskSpec}`` (a copy)."""
        return self.app.tasks

    def add_task(self, spec: TaskSpec | Mapping[str, Any]) -> TaskSpec:
        """Add a task (created now on the scenario clock unless ``created_at`` is set)."""
        return self.app.add_task(spec)

    def remove_task(self, task_id: str) -> None:
        """Remove a task."""
        self.app.remove_task(task_id)

    def set_faults(self, task_id: str, faults: Iterable[Fault | Mapping[str, Any] | str]) -> None:
        """Replace the faults for ``task_id`` (``"*"``: every request); ``[]`` clears them."""
        self.app.set_faults(task_id, faults)

    def clear_faults(self, task_id: str | None = None) -> None:
        """Clear one task's faults, or all."""
        self.app.clear_faults(task_id)

    @property
    def requests(self) -> RequestLog:
        """Every request seen so far (thread-safe)."""
        return self.app.requests

    def request_count(self, task_id: str | None = None, provider: str | None = None, *,
                      operation: str | None = None, status: int | None = None) -> int:
        """Number of requests matching every filter given.

        ``operation``: ``"status"``, ``"list"``, ``"create"`` or ``"download"`` (or a vendor operation name such
        as ``"GetExportTasksStatusOfDataset"``). E.g. ``sim.request_count(operation="list")`` counts ModelArts
        list pages, ``sim.request_count("t1", operation="status")`` the status calls for task t1.
        """
        return self.app.requests.count(task_id=task_id, provider=provider, operation=operation, status=status)

    def request_counts(self) -> dict[str, int]:
        """Requests per kind so far, e.g. ``{"list": 2, "status": 1}``."""
        return self.app.requests.counts()

    # -- creates and downloads --------------------------------------------------------------------------

    @property
    def create_policy(self) -> CreatePolicy:
        """What create requests start now (see :class:`.CreatePolicy`)."""
        return self.app.create_policy

    def set_create_policy(self, policy: CreatePolicy | Mapping[str, Any]) -> None:
        """Change what later creates start, e.g. ``sim.set_create_policy({"template": {"duration": 5},
        "running_limit": 2, "read_lag": 3})``."""
        self.app.set_create_policy(policy)

    def download_url_for(self, task_id: str) -> str:
        """The pre-signed ``downloadUrl`` a finished Qianfan task has now (valid ``download_ttl`` scenario
        seconds). Raises ``ValueError`` before the export has succeeded."""
        return self.app.download_url_for(task_id)

    def export_file(self, task_id: str) -> ExportFile:
        """The file behind a Qianfan task's ``downloadUrl``: ``.size``, ``.read(start, end)``, ``.sha256()``."""
        return self.app.export_file(task_id)

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the simulator while answering (should stay empty)."""
        return self._server.errors if self._server else []


@contextmanager
def serve(
    tasks: Iterable[TaskSpec | Mapping[str, Any]] | None = None,
    *,
    port: int = 0,
    clock: Clock | None = None,
    scenario: Scenario | None = None,
    **kwargs: Any,
) -> Iterator[Simulator]:
    """Run a simulator for the duration of a ``with`` block.

    ``tasks=None`` (and no ``scenario``) serves the demo set; ``clock`` defaults to wall time.

    >>> from export_widgets.simulator import serve, FakeClock
    >>> with serve(clock=FakeClock()) as sim:          # doctest: +SKIP
    ...     sim.clock.advance(10)
    ...     sim.modelarts_client().get_export_task(sim.dataset_id, "rF9NNoB56k5rtYKg2Y7").state
    <TaskState.SUCCEEDED: 'SUCCEEDED'>
    """
    sim = Simulator(tasks, port=port, clock=clock, scenario=scenario, **kwargs).start()
    try:
        yield sim
    finally:
        sim.stop()
