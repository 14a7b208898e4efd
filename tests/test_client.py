"""wsocket.connect(): against the websockets library's server, wsocket's own, and bad servers."""

import base64
import contextlib
import hashlib
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trustme
from websockets.sync.server import serve

import wsocket
from wsocket import ConnectError, ConnectionClosed, HandshakeError, InvalidStatus, connect
from tests.apps import echo

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@contextlib.contextmanager
def websockets_server(handler, host="127.0.0.1", **options):
    """The independent peer: a websockets sync server on a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, 0), family=family)
    with serve(handler, sock=listener, **options) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        try:
            yield port
        finally:
            server.shutdown()
            thread.join(5)


def peer_echo(connection):
    for message in connection:
        connection.send(message)


@pytest.mark.parametrize("compression", [True, False])
def test_echo_against_websockets_server_every_size(compression):
    options = {"compression": "deflate" if compression else None, "max_size": None}
    with websockets_server(peer_echo, **options) as port:
        with connect("ws://127.0.0.1:%d/" % port, compression=compression,
                     max_message_size=None) as ws:
            assert ws.do_compress is compression
            for size in (0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB):
                data = bytes(range(256)) * (size // 256) + bytes(size % 256)
                ws.send(data)
                assert ws.receive(timeout=30) == data
                text = "ü" * (size // 2)
                ws.send(text)
                assert ws.receive(timeout=30) == text
        assert (ws.closed, ws.close_code) == (True, 1000)


def test_subprotocol_chosen_by_the_server():
    def handler(connection):
        connection.send(connection.subprotocol)

    with websockets_server(handler, subprotocols=["b", "a"]) as port:
        with connect("ws://127.0.0.1:%d/" % port, protocols=["a", "b"]) as ws:
            assert ws.protocol == "b"
            assert ws.receive(timeout=5) == "b"


def test_fragmented_message_from_the_server():
    def handler(connection):
        connection.send(["one ", "two ", "three"])
        connection.send([b"\x01", b"\x02"])
        connection.recv()

    with websockets_server(handler) as port:
        with connect("ws://127.0.0.1:%d/" % port) as ws:
            assert ws.receive(timeout=5) == "one two three"
            assert ws.receive(timeout=5) == b"\x01\x02"


def test_close_from_the_server_with_code_and_reason():
    def handler(connection):
        connection.close(4002, "server says bye")

    with websockets_server(handler) as port:
        ws = connect("ws://127.0.0.1:%d/" % port)
        with pytest.raises(ConnectionClosed) as raised:
            ws.receive(timeout=5)
        assert (raised.value.code, raised.value.reason) == (4002, "server says bye")
        assert (ws.closed, ws.close_code, ws.close_reason) == (True, 4002, "server says bye")


def test_close_from_the_client_with_code_and_reason():
    seen = []

    def handler(connection):
        try:
            connection.recv()
        except Exception:
            seen.append((connection.close_code, connection.close_reason))

    with websockets_server(handler) as port:
        ws = connect("ws://127.0.0.1:%d/" % port)
        ws.close(3003, "client says bye")
        assert ws.closed and ws.close_code == 3003
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [(3003, "client says bye")]


def test_keepalive_pings_the_server():
    pongs = []

    class Recording(wsocket.WebSocket):
        def handle_pong(self, payload):
            pongs.append(payload)

    def handler(connection):
        time.sleep(1.2)
        connection.send("late")

    with websockets_server(handler) as port:
        with connect("ws://127.0.0.1:%d/" % port, ping_interval=0.2, ping_timeout=1,
                     websocket_class=Recording) as ws:
            assert ws.receive(timeout=5) == "late"
    assert len(pongs) >= 3


def test_against_wsocket_server_with_path_and_query():
    def app(environ, start_response):
        websocket = environ["wsgi.websocket"]
        websocket.send("%s?%s" % (websocket.path, environ["QUERY_STRING"]))
        return echo(environ, start_response)

    server = wsocket.make_server("127.0.0.1", 0, app, max_message_size=None).start()
    try:
        url = server.url.replace("http://", "ws://") + "chat/room?user=x"
        with connect(url, max_message_size=None) as ws:
            assert ws.receive(timeout=5) == "/chat/room?user=x"
            ws.send(b"\xff" * (16 * MiB))
            assert ws.receive(timeout=30) == b"\xff" * (16 * MiB)
    finally:
        server.stop()


def test_ipv6_literal():
    with websockets_server(peer_echo, host="::1") as port:
        with connect("ws://[::1]:%d/" % port) as ws:
            ws.send("over IPv6")
            assert ws.receive(timeout=5) == "over IPv6"


# -- bad servers, played by raw sockets ---------------------------------------

@contextlib.contextmanager
def raw_server(respond):
    """A one-connection server: ``respond(sock, key, request)`` does the talking."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run():
        sock, _ = listener.accept()
        with sock:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = [line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:")][0]
            respond(sock, key, request)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield "ws://127.0.0.1:%d/" % port
    finally:
        listener.close()
        thread.join(5)


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def switching(key, extra=b""):
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_for(key) + b"\r\n" + extra + b"\r\n")


def test_wrong_accept_key():
    def respond(sock, key, request):
        sock.sendall(switching(b"AAAAAAAAAAAAAAAAAAAAAA=="))

    with raw_server(respond) as url:
        with pytest.raises(HandshakeError, match="wrong Sec-WebSocket-Accept") as raised:
            connect(url)
        assert raised.value.status == 101


def test_200_instead_of_101_raises_invalid_status_with_headers_and_body():
    def respond(sock, key, request):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                     b"\r\nhello")

    with raw_server(respond) as url:
        with pytest.raises(InvalidStatus) as raised:
            connect(url)
    error = raised.value
    assert str(error) == "server at %s answered 200 instead of 101 Switching Protocols" % url
    assert (error.status, error.body) == (200, b"hello")
    assert ("content-type", "text/plain") in error.headers


def test_unoffered_subprotocol():
    def respond(sock, key, request):
        sock.sendall(switching(key, b"Sec-WebSocket-Protocol: other\r\n"))

    with raw_server(respond) as url:
        with pytest.raises(HandshakeError,
                           match="server chose a subprotocol that was not offered: other"):
            connect(url, protocols=["chat"])


def test_unoffered_extension_parameter():
    def respond(sock, key, request):
        sock.sendall(switching(key, b"Sec-WebSocket-Extensions: permessage-deflate; "
                                    b"client_max_window_bits=20\r\n"))

    with raw_server(respond) as url:
        with pytest.raises(HandshakeError, match="permessage-deflate"):
            connect(url)


def test_extension_when_none_was_offered():
    def respond(sock, key, request):
        assert b"sec-websocket-extensions" not in request.lower()
        sock.sendall(switching(key, b"Sec-WebSocket-Extensions: permessage-deflate\r\n"))

    with raw_server(respond) as url:
        with pytest.raises(HandshakeError, match="not offered"):
            connect(url, compression=False)


def test_masked_frame_from_the_server_fails_with_1002():
    received = []

    def respond(sock, key, request):
        sock.sendall(switching(key) + b"\x81\x82\x00\x00\x00\x00hi")  # masked: forbidden
        sock.settimeout(5)
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        received.append(data)

    with raw_server(respond) as url:
        ws = connect(url)
        assert ws.receive(timeout=5) is None
        assert (ws.closed, ws.close_code) == (True, 1002)
        with pytest.raises(ConnectionClosed):
            ws.receive()
    # The client's close frame: masked, opcode 8, code 1002.
    frame = received[0]
    assert frame[0] == 0x88 and frame[1] & 0x80
    payload = bytes(b ^ frame[2 + (i % 4)] for i, b in enumerate(frame[6:6 + (frame[1] & 0x7F)]))
    assert payload[:2] == b"\x03\xea"


def test_client_frames_are_masked():
    frames = []

    def respond(sock, key, request):
        sock.sendall(switching(key))
        sock.settimeout(5)
        frames.append(sock.recv(4096))

    with raw_server(respond) as url:
        ws = connect(url, compression=False)
        ws.send("abc")
        time.sleep(0.2)
    frame = frames[0]
    assert frame[0] == 0x81 and frame[1] == 0x83
    mask = frame[2:6]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(frame[6:9])) == b"abc"


def test_server_that_never_answers_times_out():
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConnectError, match="timed out waiting for the handshake response"):
            connect("ws://127.0.0.1:%d/" % port, open_timeout=0.5)
        assert time.monotonic() - started < 3
    finally:
        listener.close()


def test_refused_connection():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(ConnectError, match="cannot connect to ws://127.0.0.1:%d/" % port):
        connect("ws://127.0.0.1:%d/" % port)


def test_bad_urls():
    with pytest.raises(ValueError, match="not a WebSocket URL"):
        connect("http://127.0.0.1/")
    with pytest.raises(ValueError, match="no host"):
        connect("ws:///path")


# -- wss:// -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate_authority():
    return trustme.CA()


def test_wss_with_a_trusted_certificate(certificate_authority, tmp_path):
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    with websockets_server(peer_echo, ssl=server_context) as port:
        with connect("wss://127.0.0.1:%d/" % port, ssl_context=client_context) as ws:
            ws.send("secret")
            assert ws.receive(timeout=5) == "secret"
        # The system trust store does not know the test CA: a clear refusal.
        with pytest.raises(ConnectError, match="TLS handshake with wss://127.0.0.1:%d/ failed"
                           % port):
            connect("wss://127.0.0.1:%d/" % port)


# -- the terminal client ------------------------------------------------------------

@pytest.mark.parametrize("command", [["-m", "wsocket.client"], ["-m", "wsocket", "connect"]])
def test_terminal_client(command):
    with websockets_server(peer_echo) as port:
        result = subprocess.run(
            [sys.executable] + command + ["ws://127.0.0.1:%d/" % port],
            input="first line\nsecond line\n", capture_output=True, text=True, timeout=30,
            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "first line\nsecond line\n"
    assert "connected to ws://127.0.0.1:%d/" % port in result.stderr
    assert "closed (code 1000)" in result.stderr


def test_terminal_client_refused():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    result = subprocess.run([sys.executable, "-m", "wsocket.client", "ws://127.0.0.1:%d/" % port],
                            input="", capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.startswith("wsocket connect: error: cannot connect to")


def test_terminal_client_headers_and_subprotocols():
    def handler(connection):
        headers = connection.request.headers
        connection.send(json.dumps({
            "chosen": connection.subprotocol, "offered": headers["Sec-WebSocket-Protocol"],
            "one": headers.get_all("X-One"), "two": headers.get_all("X-Two")}))
        for message in connection:
            connection.send(message)

    with websockets_server(handler, subprotocols=["second", "first"]) as port:
        result = subprocess.run(
            [sys.executable, "-m", "wsocket", "connect", "ws://127.0.0.1:%d/" % port,
             "--header", "X-One: 1", "--header", "X-Two:two words ", "--header", "X-One: again",
             "--subprotocol", "first", "--subprotocol", "second"],
            input="", capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"chosen": "second", "offered": "first, second",
                                         "one": ["1", "again"], "two": ["two words"]}
    assert "connected to ws://127.0.0.1:%d/ (subprotocol second)" % port in result.stderr


@pytest.mark.parametrize("option, message", [
    (["--header", "no colon"], "wsocket connect: error: --header must look like 'Name: value'\n"),
    (["--header", ": empty name"],
     "wsocket connect: error: --header must look like 'Name: value'\n"),
    (["--header", "Bad Name: x"], "wsocket connect: error: invalid header name 'Bad Name'\n"),
    (["--header", "X-Split: a\rInjected: b"],
     "wsocket connect: error: invalid character (CR, LF or another control) in the value of "
     "header 'X-Split'\n"),
    (["--proxy", "socks4://127.0.0.1:1080"],
     "wsocket connect: error: unsupported proxy socks4://127.0.0.1:1080: the scheme must be "
     "one of http://, socks5://, socks5h://\n"),
])
def test_terminal_client_bad_options(option, message):
    result = subprocess.run([sys.executable, "-m", "wsocket.client", "ws://127.0.0.1:1/"] + option,
                            input="", capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert (result.returncode, result.stderr) == (2 if "--header must" in message else 1,
                                                  message)


@pytest.mark.parametrize("headers, message", [
    ({"Bad Name": "x"}, "invalid header name 'Bad Name'"),
    ([("X-A", "a\r\nInjected: b")],
     "invalid character (CR, LF or another control) in the value of header 'X-A'"),
    ([("X-A", "a", "b")], "headers must be a dict or (name, value) pairs, not ('X-A', 'a', 'b')"),
])
def test_bad_headers(headers, message):
    with pytest.raises(ValueError) as raised:
        connect("ws://127.0.0.1:1/", headers=headers)
    assert str(raised.value) == message


def test_terminal_client_does_not_print_the_password():
    def handler(connection):
        connection.send(connection.request.headers["Authorization"])

    with websockets_server(handler) as port:
        result = subprocess.run(
            [sys.executable, "-m", "wsocket.client", "ws://alice:s3cret@127.0.0.1:%d/x" % port],
            input="", capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Basic YWxpY2U6czNjcmV0\n"
    assert "connected to ws://127.0.0.1:%d/x\n" % port in result.stderr
    assert "s3cret" not in result.stderr
