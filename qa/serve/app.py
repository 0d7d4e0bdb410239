"""The application: configuration, the store reader, the routes, and ``serve()`` on uvicorn.

Starlette routes requests to plain handler functions (:mod:`qa.serve.pages` for HTML,
:mod:`qa.serve.api` for JSON); each turns a request into a store query and a template or a JSON body,
nothing more. The store is read through one read-only DuckDB connection shared by the request threads
(a cursor each), let go after a second without requests and while a job's worker runs, so writers (the
worker, or a ``qa run --db`` elsewhere) can take the store's lock.
"""

from __future__ import annotations

import threading
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from qa.serve.uploads import Limits

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

SECURITY_HEADERS = {
    "content-security-policy": ("default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                "script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
"""Headers on every response: nothing is loaded from elsewhere, no page is framed."""


@dataclass
class Config:
    """How ``qa serve`` runs (the command's options).

    Attributes
    ----------
    db : Path
        The run store (created when missing).
    host, port : str, int
        Where to listen (127.0.0.1:8000 by default).
    token : str or None
        The token for writes (and every request off the loopback); None: read-only.
    roots : list of Path
        Folders manifests named by path may read from.
    jobs_dir : Path or None
        The job queue's folder (default: ``<db>.jobs`` beside the store).
    limits : Limits
        Bounds on uploads.
    workers : int or None
        Processes per run (``qa run --workers``).
    dask : str or None
        A Dask scheduler address (``tcp://host:8786``) or ``local:N`` for the runs (``qa run --dask``);
        None runs each on the local pool.
    lock_timeout : float
        Seconds to wait for the store's lock.
    page_size : int
        Runs per page.
    """

    db: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    roots: list = field(default_factory=list)
    jobs_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    workers: int | None = None
    dask: str | None = None
    lock_timeout: float = 30.0
    page_size: int = 50
    idle_release: float = 1.0

    def __post_init__(self):
        self.db = Path(self.db).resolve()
        self.roots = [Path(r).resolve() for r in self.roots]
        self.jobs_dir = Path(self.jobs_dir).resolve() if self.jobs_dir else self.db.with_name(self.db.name + ".jobs")

    @property
    def loopback(self) -> bool:
        from qa.serve.auth import is_loopback

        return is_loopback(self.host)


class Reader:
    """Read access to the store for request threads: ``with reader.open() as store: ...``.

    One read-only connection is kept while requests come and shared through cursors; it is closed after
    ``idle`` seconds without a request, and while :meth:`pause` is in force (a worker may write) each
    request opens and closes its own.
    """

    def __init__(self, db: Path, *, lock_timeout: float = 30.0, idle: float = 1.0):
        self.db, self.lock_timeout, self.idle = db, lock_timeout, idle
        self._lock = threading.Lock()
        self._keeper = None
        self._users = 0
        self._last = 0.0
        self._paused = 0
        self._stop = threading.Event()
        self._thread = None

    @contextmanager
    def open(self):
        from qa import store

        with self._lock:
            shared = not self._paused
            if shared:
                if self._keeper is None:
                    self._keeper = store.open(self.db, lock_timeout=self.lock_timeout)
                self._users += 1
                cursor = self._keeper.cursor()
        if not shared:
            with store.open(self.db, lock_timeout=self.lock_timeout) as own:
                yield own
            return
        try:
            yield cursor
        finally:
            cursor.close()
            with self._lock:
                self._users -= 1
                self._last = time.monotonic()

    def pause(self) -> None:
        """Stop sharing a connection (a writer is about to need the lock); the shared one closes when idle."""
        with self._lock:
            self._paused += 1
        self.release_idle(force=True)

    def resume(self) -> None:
        with self._lock:
            self._paused = max(self._paused - 1, 0)

    def release_idle(self, *, force: bool = False) -> None:
        """Close the shared connection when nobody uses it and it has been idle (or when paused)."""
        with self._lock:
            if self._keeper is None or self._users:
                return
            if force or self._paused or time.monotonic() - self._last >= self.idle:
                self._keeper.close()
                self._keeper = None

    def start(self) -> None:
        def loop():
            while not self._stop.wait(0.1):
                self.release_idle()
        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="qa-reader-idle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        with self._lock:
            if self._keeper is not None:
                self._keeper.close()
                self._keeper = None


class Service:
    """What the handlers share: the configuration, the store reader, the job queue and the templates."""

    def __init__(self, config: Config):
        import jinja2

        from qa import store
        from qa._resources import templates_dir
        from qa.serve.jobs import JobQueue

        self.config = config
        with store.open(config.db, read_only=False, lock_timeout=config.lock_timeout):
            pass  # create the store (or upgrade its schema) before anything reads it
        self.reader = Reader(config.db, lock_timeout=config.lock_timeout, idle=config.idle_release)
        self.jobs = JobQueue(config.jobs_dir, config.db, stored=self.stored, workers=config.workers, dask=config.dask,
                             lock_timeout=config.lock_timeout, on_start=self.reader.pause,
                             on_finish=self.reader.resume)
        self.templates_dir = templates_dir()
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(self.templates_dir)), autoescape=True)

    def stored(self, run_id: str) -> int | None:
        """The seq of a stored run, or None."""
        with self.reader.open() as s:
            return s.seq_of(run_id)

    def start(self) -> None:
        self.reader.start()
        self.jobs.start()

    def stop(self) -> None:
        self.jobs.stop()
        self.reader.stop()


STATIC = {"report.css": "text/css", "report.js": "text/javascript", "serve/serve.css": "text/css"}
"""The only files served from the templates folder, with their types."""


def create_app(config: Config):
    """The Starlette application for ``config`` (the job queue starts with it and stops with it)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from qa.serve import api, pages
    from qa.serve.auth import TokenMiddleware

    service = Service(config)

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        try:
            yield
        finally:
            service.stop()

    routes = [Route(path, endpoint, methods=methods, name=name) for path, methods, endpoint, name in pages.ROUTES]
    routes += [Route(r.path, r.endpoint, methods=[r.method], name=r.name) for r in api.ROUTES]
    routes.append(Route("/static/{name:path}", static, name="static"))
    middleware = [Middleware(_Headers), Middleware(TokenMiddleware, token=config.token,
                                                   everything=not config.loopback, loopback_only=config.loopback)]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={404: pages.not_found, 500: pages.server_error})
    app.state.service = service
    return app


def static(request):
    """Our own CSS and script (no other file is served)."""
    from starlette.responses import Response

    from qa.serve.pages import not_found

    name = request.path_params["name"]
    kind = STATIC.get(name)
    if kind is None:
        return not_found(request, None)
    folder = request.app.state.service.templates_dir
    return Response((folder / name).read_bytes(), media_type=kind)


class _Headers:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def sending(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {k.lower() for k, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, sending)


def serve(config: Config, *, log_level: str = "warning") -> None:
    """Run the service on uvicorn until interrupted.

    Raises
    ------
    ConfigError
        Bound beyond the loopback without a token.
    """
    import uvicorn

    from qa.errors import ConfigError

    if not config.loopback and config.token is None:
        raise ConfigError(f"--host {config.host} listens beyond this machine: every request then needs the token; "
                          "set QA_TOKEN or pass --token-file")
    app = create_app(config)
    uvicorn.run(app, host=config.host, port=config.port, log_level=log_level, access_log=False,
                server_header=False, proxy_headers=False)
