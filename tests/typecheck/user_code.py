"""Code as a user of wsocket writes it, for mypy (tests/test_typing.py), never run.

(Not for ruff either: ``reveal_type`` is mypy's, and imports nothing.)

Each ``reveal_type`` is matched against what tests/test_typing.py expects:
the types a user's checker sees for the public API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsocket import CloseCode, Response, connect, make_server
from wsocket.framework import Framework
from wsocket.testing import TestClient

if TYPE_CHECKING:
    from collections.abc import Iterable

    from wsocket._wsgi_types import Environ, StartResponse


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def route(environ: Environ, start_response: StartResponse) -> str:
    start_response("200 OK", [])
    return "hi"


def decided_at_run_time() -> bool:
    return True


reveal_type(connect("ws://127.0.0.1:1/"))  # connect
reveal_type(connect("ws://127.0.0.1:1/", reconnect=True))  # reconnect
reveal_type(connect("ws://127.0.0.1:1/", reconnect=decided_at_run_time()))  # either
reveal_type(make_server(port=0, app=app))  # make_server
reveal_type(TestClient(app).get("/").status)  # status
reveal_type(Response("gone", 410, {"X-Why": "moved"}).headers)  # headers
reveal_type(Framework().route("/hello")(route))  # route
reveal_type(CloseCode.GOING_AWAY)  # close code
