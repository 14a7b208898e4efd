"""wsocket's server at the HTTP edge: raw bytes in, exact status, closed or not, what the app saw.

The cases (tests/http_cases.py) are every class of issue 13: response
splitting, request targets, header lines, chunked framing,
Transfer-Encoding, Content-Length, bodies that never come, Host,
``Expect: 100-continue`` and the request line. The server is
``python -m wsocket tests.http_edge_app:app`` as a subprocess; its log must
show no traceback and no ERROR line for anything a client sent. The same
cases then go to gunicorn (gthread): wsocket refuses every one gunicorn
refuses, and more.
"""

import json
import socket
import time

import pytest

from tests.http_cases import CASES, SLOW_BODY, Case
from tests.http_edge_app import SPLITTING
from tests.netutil import TIMEOUT, Reader, open_connection
from tests.serverproc import python, start_server

MAX_BODY_SIZE = 1000
BODY_TIMEOUT = 1.0


def _start_wsocket(folder):
    return start_server("wsocket", python(
        "-m", "wsocket", "tests.http_edge_app:app", "--port", "{port}",
        "--max-body-size", str(MAX_BODY_SIZE), "--body-timeout", str(BODY_TIMEOUT)),
        folder / "wsocket.log")


@pytest.fixture(scope="module")
def wsocket_server(tmp_path_factory):
    """The server for what clients send: its log must stay free of errors."""
    server = _start_wsocket(tmp_path_factory.mktemp("http-edge"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def splitting_server(tmp_path_factory):
    """The server for apps that answer badly: those are logged as errors."""
    server = _start_wsocket(tmp_path_factory.mktemp("http-edge-split"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("http-edge") / "gunicorn.log"
    server = start_server("gunicorn", python(
        "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-b", "127.0.0.1:{port}",
        "tests.http_edge_app:app"), log)
    try:
        yield server
    finally:
        server.stop()


class Outcome:
    """What a server did with one raw request on a fresh connection."""

    def __init__(self, status, closed, seen, head):
        self.status = status  # None: no response at all
        self.closed = closed
        self.seen = seen
        self.head = head

    @property
    def refused(self):
        return self.status is None or self.status >= 400  # 0: still waiting


def exchange(port, raw, probe=True, timeout=TIMEOUT):
    """Send ``raw``; read one response; then, unless it closed, check a next request works.

    A server still waiting after ``timeout`` (for a body it expects) has
    not refused: status 0.
    """
    sock = open_connection("127.0.0.1", port, timeout)
    with sock:
        sock.sendall(raw)
        reader = Reader(sock)
        try:
            response = reader.read_response()
        except (EOFError, ConnectionError):
            return Outcome(None, True, None, None)
        except socket.timeout:
            return Outcome(0, False, None, None)
        seen = None
        if response.status == 200 and response.header("Content-Type") == "application/json":
            seen = json.loads(response.body)
        closed = response.header("Connection") == "close"
        if probe and not closed:
            try:
                sock.sendall(b"GET /probe HTTP/1.1\r\nHost: x\r\n\r\n")
                follow = reader.read_response()
                closed = json.loads(follow.body)["path"] != "/probe"
            except (EOFError, ConnectionError, ValueError):
                closed = True
        return Outcome(response.status, closed, seen, response)


def _subset(expected, actual, where="seen"):
    for key, value in expected.items():
        if isinstance(value, dict):
            _subset(value, actual[key], where + "." + key)
        else:
            assert actual.get(key) == value, "%s.%s: %r != %r" % (where, key, actual.get(key),
                                                                   value)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_raw_request(wsocket_server, case: Case):
    outcome = exchange(wsocket_server.port, case.raw)
    assert outcome.status == case.status
    assert outcome.closed == case.closed
    if case.seen is not None:
        _subset(case.seen, outcome.seen)
    if case.status >= 400:
        assert outcome.head.header("Connection") == "close"
        assert outcome.head.header("Content-Type") == "text/plain; charset=utf-8"


def test_no_client_input_logs_an_error(wsocket_server):
    """Runs after the table: a refused request is one INFO line, never an ERROR or a traceback."""
    for case in CASES:
        exchange(wsocket_server.port, case.raw, probe=False)
    wsocket_server.assert_no_errors()


# -- 1. response splitting, for a plain WSGI app ------------------------------------

@pytest.mark.parametrize("name", sorted(SPLITTING))
def test_response_splitting_is_refused(splitting_server, name):
    sock = open_connection("127.0.0.1", splitting_server.port)
    with sock:
        sock.sendall(b"GET /split/%s HTTP/1.1\r\nHost: x\r\n\r\n" % name.encode())
        reader = Reader(sock)
        response = reader.read_response()
        rest = reader.read_to_eof()
    assert response.status_line == "HTTP/1.1 500 Internal Server Error"
    assert response.header("Connection") == "close"
    assert response.body == b"Internal Server Error\n"
    assert b"pwn" not in response.body + rest and response.header("X-Injected") is None
    assert rest == b""
    status, headers = SPLITTING[name]
    bad = status if name.startswith("status") else headers[0][0 if "name" in name else 1]
    log = splitting_server.stderr()
    lines = [line for line in log.splitlines() if "ERROR" in line and "/split/" + name in line]
    assert lines, log[-3000:]
    assert repr(bad) in lines[-1]  # the log names what was refused


@pytest.mark.parametrize("sent", ["", "abc"])
def test_a_response_shorter_than_its_content_length_ends_the_connection(splitting_server, sent):
    sock = open_connection("127.0.0.1", splitting_server.port)
    with sock:
        sock.sendall(b"GET /short/%s HTTP/1.1\r\nHost: x\r\n\r\n" % sent.encode())
        reader = Reader(sock)
        status_line, headers = reader.read_head()
        assert status_line == "HTTP/1.1 200 OK" and ("Content-Length", "10") in headers
        assert reader.read_to_eof() == sent.encode()  # then the end: never a next response
    assert "sent %d of the 10 bytes" % len(sent) in splitting_server.stderr()


# -- 7. bodies that never come --------------------------------------------------------

def test_body_that_never_comes_gets_408_and_close(wsocket_server):
    sock = open_connection("127.0.0.1", wsocket_server.port)
    with sock:
        started = time.monotonic()
        sock.sendall(SLOW_BODY)
        reader = Reader(sock)
        response = reader.read_response()
        waited = time.monotonic() - started
        assert reader.read_to_eof() == b""
    assert response.status_line == "HTTP/1.1 408 Request Timeout"
    assert response.header("Connection") == "close"
    assert b"not received within 1 s" in response.body
    assert waited >= BODY_TIMEOUT * 0.9
    wsocket_server.assert_no_errors()


def test_body_cut_by_the_client_logs_no_error(wsocket_server):
    sock = open_connection("127.0.0.1", wsocket_server.port)
    sock.sendall(SLOW_BODY)
    sock.shutdown(socket.SHUT_WR)
    reader = Reader(sock)
    with sock:
        response = reader.read_response()
    assert response.status == 400
    assert b"connection closed in the middle of the request body" in response.body
    wsocket_server.assert_no_errors()


# -- 10. Expect: 100-continue ----------------------------------------------------------

def test_100_continue_when_the_app_reads_the_body(wsocket_server):
    sock = open_connection("127.0.0.1", wsocket_server.port)
    with sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        reader = Reader(sock)
        status_line, headers = reader.read_head()  # comes before any body byte is sent
        assert status_line == "HTTP/1.1 100 Continue" and headers == []
        sock.sendall(b"hello")
        response = reader.read_response()
        assert response.status == 200
        assert json.loads(response.body)["body"] == "hello"
        # Keep-alive goes on.
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        assert json.loads(reader.read_response().body)["path"] == "/next"


def test_no_100_continue_when_the_app_does_not_read(wsocket_server):
    sock = open_connection("127.0.0.1", wsocket_server.port)
    with sock:
        sock.sendall(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        reader = Reader(sock)
        response = reader.read_response()
        assert response.status == 200 and response.body == b"noread"
        # The body was never asked for: the connection closes rather than wait for it.
        assert response.header("Connection") == "close"
        assert reader.read_to_eof() == b""


def test_http10_gets_no_100_continue(wsocket_server):
    sock = open_connection("127.0.0.1", wsocket_server.port)
    with sock:
        sock.sendall(b"POST /x HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok")
        response = Reader(sock).read_response()
    assert response.status == 200 and json.loads(response.body)["body"] == "ok"


# -- the same cases against gunicorn -----------------------------------------------

def test_wsocket_refuses_all_gunicorn_refuses_and_more(wsocket_server, gunicorn_server):
    """Counts of cases that RFC 9112 requires refused, refused by each server (README)."""
    required = [case for case in CASES if case.must_refuse]
    refused = {"wsocket": set(), "gunicorn": set()}
    for case in required:
        for name, server in (("wsocket", wsocket_server), ("gunicorn", gunicorn_server)):
            if exchange(server.port, case.raw, probe=False, timeout=3).refused:
                refused[name].add(case.name)
    missed = refused["gunicorn"] - refused["wsocket"]
    assert not missed, missed
    assert refused["wsocket"] == {case.name for case in required}
    assert len(refused["wsocket"]) > len(refused["gunicorn"])
    accepted = sorted({case.name for case in required} - refused["gunicorn"])
    policy = [case for case in CASES if case.policy]
    policy_refused = [case.name for case in policy
                      if exchange(gunicorn_server.port, case.raw, probe=False, timeout=3).refused]
    print("\n%d cases RFC 9110/9112 require refused: wsocket refuses %d, gunicorn %d; gunicorn "
          "accepts: %s. Refused by wsocket's policy: %d, of which gunicorn refuses %d (%s)"
          % (len(required), len(refused["wsocket"]), len(refused["gunicorn"]),
             "; ".join(accepted), len(policy), len(policy_refused), "; ".join(policy_refused)))


# -- the new options ------------------------------------------------------------------

def test_body_options_reach_the_server():
    from tests import apps
    from wsocket import make_server
    server = make_server("127.0.0.1", 0, apps.http, max_body_size=None, body_timeout=2.5)
    try:
        assert server.max_body_size is None and server.body_timeout == 2.5
    finally:
        server.server_close()


@pytest.mark.parametrize("option, value, message", [
    ("body_timeout", 0, "body_timeout must be a positive number, not 0"),
    ("max_body_size", -1, "max_body_size must be a positive number, not -1"),
])
def test_bad_body_option_values_are_refused(option, value, message):
    from tests import apps
    from wsocket import make_server
    with pytest.raises(ValueError) as raised:
        make_server("127.0.0.1", 0, apps.http, **{option: value})
    assert str(raised.value) == message


@pytest.mark.parametrize("flag, value, message", [
    ("--max-body-size", "0", "argument --max-body-size: must be at least 1"),
    ("--body-timeout", "soon", "argument --body-timeout: expected seconds, not 'soon'"),
])
def test_bad_body_flags_are_refused(flag, value, message):
    import subprocess
    import sys
    from tests.netutil import ROOT
    result = subprocess.run([sys.executable, "-m", "wsocket", "tests.apps:echo", flag, value],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr == "wsocket: error: %s (see wsocket --help)\n" % message
