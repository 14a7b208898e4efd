"""The server's limits: request head size and time, idle keep-alive, connections at once."""

import socket
import subprocess
import sys
import time

import pytest

from tests import apps
from tests.rawws import RawClient
from tests.netutil import ROOT, TIMEOUT, Reader, open_connection, request
from wsocket import make_server


def read_until_closed(sock, limit=10.0):
    """Everything the server sends until it ends the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(limit)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - started


def test_request_head_over_the_limit_gets_431(serve):
    server = serve(apps.echo, max_request_head=1024)
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        sock.sendall(request("GET", "/", [("X-Padding", "x" * 2000)]))
        response = Reader(sock).read_response()
    assert response.status_line == "HTTP/1.1 431 Request Header Fields Too Large"
    assert response.body == b"431 Request Header Fields Too Large: request head larger than " \
                            b"1024 bytes\n"


def test_client_that_sends_nothing_is_dropped(serve):
    server = serve(apps.echo, request_timeout=0.5)
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        data, elapsed = read_until_closed(sock)
    assert data == b""
    assert 0.4 < elapsed < 3


def test_slowloris_request_gets_408_at_the_request_timeout(serve):
    server = serve(apps.echo, request_timeout=1.0)
    sock = open_connection("127.0.0.1", server.server_port)
    started = time.monotonic()
    with sock:
        for byte in b"GET":  # a byte every 0.3 s, the head never completes
            sock.sendall(bytes([byte]))
            time.sleep(0.3)
        data, _ = read_until_closed(sock)
    elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert data.endswith(b"408 Request Timeout: request head not complete within 1 s\n")
    assert elapsed < 4


def test_idle_keep_alive_connection_is_closed(serve):
    server = serve(apps.echo, keep_alive_timeout=0.5)
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        sock.sendall(request("GET", "/first"))
        assert Reader(sock).read_response().body == b"plain HTTP GET /first"
        data, elapsed = read_until_closed(sock)
    assert data == b""
    assert 0.4 < elapsed < 3


def test_connections_past_max_connections_get_503_until_one_leaves(serve):
    server = serve(apps.echo, max_connections=3)
    held = []
    for _ in range(3):
        client = RawClient("127.0.0.1", server.server_port)
        assert client.handshake().startswith("HTTP/1.1 101")
        held.append(client)
    try:
        sock = open_connection("127.0.0.1", server.server_port)
        with sock:
            data, _ = read_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert data.endswith(b"\r\n\r\n503 Service Unavailable: too many connections\n")
        held.pop().close()
        # The place is given back once the server has ended that connection.
        deadline = time.monotonic() + 5
        while True:
            client = RawClient("127.0.0.1", server.server_port)
            try:
                status = client.handshake()
            except ConnectionError:
                status = "refused"
            if status.startswith("HTTP/1.1 101") or time.monotonic() > deadline:
                break
            client.close()
            time.sleep(0.05)
        held.append(client)
        assert status.startswith("HTTP/1.1 101")
    finally:
        for client in held:
            client.close()


@pytest.mark.parametrize("option, value, message", [
    ("max_connections", 0, "max_connections must be a positive number, not 0"),
    ("request_timeout", -1, "request_timeout must be a positive number, not -1"),
    ("keep_alive_timeout", "5", "keep_alive_timeout must be a positive number, not '5'"),
])
def test_bad_limit_values_are_refused(option, value, message):
    with pytest.raises(ValueError) as raised:
        make_server("127.0.0.1", 0, apps.echo, **{option: value})
    assert str(raised.value) == message


@pytest.mark.parametrize("flag, value, message", [
    ("--max-connections", "0", "argument --max-connections: must be at least 1"),
    ("--request-timeout", "soon", "argument --request-timeout: expected seconds, not 'soon'"),
])
def test_bad_limit_flags_are_refused(flag, value, message):
    result = subprocess.run([sys.executable, "-m", "wsocket", "tests.apps:echo", flag, value],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr == "wsocket: error: %s (see wsocket --help)\n" % message


def test_limit_flags_reach_the_server(wsocket_process):
    server = wsocket_process("tests.apps:echo", "--port", "0", "--request-timeout", "0.5")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    with sock:
        data, elapsed = read_until_closed(sock)
    assert data == b"" and elapsed < 3
