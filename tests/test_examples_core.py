"""examples/routes.py, events.py and custom_websocket.py, each run as written.

Each runs as ``python examples/NAME.py 0``, as its docstring says (port 0:
any free port, the only difference from a user's run on 8080).
"""

import os
import re
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from tests.conftest import _BANNER, ServerProcess, read_banner
from tests.netutil import ROOT, TIMEOUT, Reader, open_connection, request


@pytest.fixture
def example(tmp_path):
    started = []

    def start(name):
        stderr_path = tmp_path / ("%s-stderr.txt" % name)
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / name), "0"],
                                    cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=stderr,
                                    env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            match = _BANNER.match(read_banner(proc))
            assert match, "unexpected banner"
        except BaseException:
            proc.kill()
            proc.wait(5)
            proc.stdout.close()
            raise
        url, scheme, host, port = match.groups()
        server = ServerProcess(proc, stderr_path, url, scheme, host, int(port))
        started.append(server)
        return server

    yield start
    for server in started:
        assert server.terminate() == 0, server.stderr()


def fetch(server, path):
    sock = open_connection(server.host, server.port)
    try:
        sock.sendall(request("GET", path))
        return Reader(sock).read_response()
    finally:
        sock.close()


def test_routes_example(example):
    server = example("routes.py")
    hello = fetch(server, "/hello/Ada")
    assert hello.status_line == "HTTP/1.1 200 OK"
    assert hello.header("Content-Type") == "text/plain; charset=utf-8"
    assert hello.body == b"Hello, Ada!"
    assert fetch(server, "/hello/Ren%C3%A9e").body == "Hello, Ren\u00e9e!".encode("utf-8")
    index = fetch(server, "/")
    assert index.header("Content-Type") == "text/html; charset=utf-8"
    assert b'<a href="/countdown">' in index.body
    countdown = fetch(server, "/countdown")
    assert countdown.header("Transfer-Encoding") == "chunked"
    assert countdown.body == b"3...\n2...\n1...\nliftoff!\n"
    plain = fetch(server, "/echo")
    assert plain.status_line == "HTTP/1.1 400 Bad Request"
    with connect(server.ws_url + "echo", open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as websocket:
        websocket.send("echo me")
        assert websocket.recv(timeout=TIMEOUT) == "echo me"
        websocket.send(b"\x01\x02")
        assert websocket.recv(timeout=TIMEOUT) == b"\x01\x02"
    assert fetch(server, "/nowhere").status == 404


def test_events_example(example):
    server = example("events.py")
    assert b"/chat" in fetch(server, "/").body
    with connect(server.ws_url + "chat", open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as first:
        assert first.recv(timeout=TIMEOUT) == "welcome, guest1: 1 here"
        assert first.recv(timeout=TIMEOUT) == "guest1 joined"
        with connect(server.ws_url + "chat", open_timeout=TIMEOUT,
                     close_timeout=TIMEOUT) as second:
            assert second.recv(timeout=TIMEOUT) == "welcome, guest2: 2 here"
            assert first.recv(timeout=TIMEOUT) == "guest2 joined"
            assert second.recv(timeout=TIMEOUT) == "guest2 joined"
            first.send("hello all")
            assert first.recv(timeout=TIMEOUT) == "guest1: hello all"
            assert second.recv(timeout=TIMEOUT) == "guest1: hello all"
        assert first.recv(timeout=TIMEOUT) == "guest2 left (1000)"


def test_custom_websocket_example(example):
    server = example("custom_websocket.py")
    with connect(server.ws_url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("hi")
        assert websocket.recv(timeout=TIMEOUT) == 'send "ping" to measure the round trip'
        for _ in range(3):
            websocket.send("ping")
            assert re.fullmatch(r"pong after \d+\.\d\d ms", websocket.recv(timeout=TIMEOUT))
