"""The middleware on wsocket's server: upgrades, negotiation, endings, early bytes."""

import base64
import hashlib
import struct
import threading
import time
import wsgiref.simple_server
import zlib

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests import apps
from tests.netutil import (
    BINARY, CLOSE, PING, PONG, TEXT, TIMEOUT, Reader, client_frame, close_frame,
    open_connection, request, upgrade, upgrade_request, wait_for_eof, ws_url,
)
from wsocket import WSocketApp

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ALLOWED_ORIGIN = "https://good.example"


def expected_accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


@pytest.fixture(scope="module")
def chat(serve_module):
    return serve_module(WSocketApp(apps.describe, protocols=["superchat", "chat"]))


@pytest.fixture(scope="module")
def guarded(serve_module):
    return serve_module(WSocketApp(apps.describe, allowed_origins=[ALLOWED_ORIGIN]))


@pytest.fixture(scope="module")
def uncompressed(serve_module):
    return serve_module(WSocketApp(apps.describe, compression=False))


@pytest.fixture(scope="module")
def fragile(serve_module):
    return serve_module(apps.fail_on_boom)


@pytest.fixture(scope="module")
def bye(serve_module):
    return serve_module(apps.say_bye)


@pytest.fixture(scope="module")
def echo(serve_module):
    return serve_module(apps.echo)


def exchange(server, data):
    """Send raw bytes on a new connection; returns the response and what followed it."""
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        sock.sendall(data)
        reader = Reader(sock)
        return reader.read_response(), reader


def describe_line(websocket):
    return websocket.recv(timeout=TIMEOUT)


# -- bad upgrades ------------------------------------------------------------------

BAD_UPGRADES = [
    # (request arguments, status line, a phrase the plain-text body must hold)
    (dict(method="POST"), "HTTP/1.1 400 Bad Request", "GET"),
    (dict(method="PUT"), "HTTP/1.1 400 Bad Request", "GET"),
    (dict(connection="keep-alive"), "HTTP/1.1 400 Bad Request", "Connection"),
    (dict(omit=("connection",)), "HTTP/1.1 400 Bad Request", "Connection"),
    (dict(key="not base64!"), "HTTP/1.1 400 Bad Request", "Sec-WebSocket-Key"),
    (dict(key=base64.b64encode(b"15 bytes only..").decode()), "HTTP/1.1 400 Bad Request",
     "Sec-WebSocket-Key"),
    (dict(key=base64.b64encode(b"seventeen bytes!!").decode()), "HTTP/1.1 400 Bad Request",
     "Sec-WebSocket-Key"),
    (dict(omit=("sec-websocket-key",)), "HTTP/1.1 400 Bad Request", "Sec-WebSocket-Key"),
    (dict(http_version="HTTP/1.0"), "HTTP/1.1 400 Bad Request", "HTTP/1.1"),
    (dict(omit=("sec-websocket-version",)), "HTTP/1.1 426 Upgrade Required",
     "Sec-WebSocket-Version"),
    (dict(version="12"), "HTTP/1.1 426 Upgrade Required", "Sec-WebSocket-Version"),
    (dict(version="14"), "HTTP/1.1 426 Upgrade Required", "Sec-WebSocket-Version"),
    (dict(version="thirteen"), "HTTP/1.1 426 Upgrade Required", "Sec-WebSocket-Version"),
]


@pytest.mark.parametrize("arguments, status_line, phrase", BAD_UPGRADES,
                         ids=[repr(case[0]) for case in BAD_UPGRADES])
def test_bad_upgrade_gets_exact_status_and_plain_text(chat, arguments, status_line, phrase):
    response, _ = exchange(chat, upgrade_request(**arguments))
    assert response.status_line == status_line
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.header("Upgrade") is None
    assert response.header("Sec-WebSocket-Accept") is None
    text = response.body.decode("utf-8")
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert phrase in text
    if response.status == 426:
        assert response.header("Sec-WebSocket-Version") == "13, 8, 7"
    else:
        assert response.header("Sec-WebSocket-Version") is None


def test_bad_upgrade_leaves_the_server_serving(chat):
    for arguments, _, _ in BAD_UPGRADES:
        exchange(chat, upgrade_request(**arguments))
    with connect(ws_url(chat), open_timeout=TIMEOUT) as websocket:
        describe_line(websocket)
        websocket.send("still here")
        assert websocket.recv(timeout=TIMEOUT) == "still here"


@pytest.mark.parametrize("version", ["13", "8", "7"])
def test_supported_versions_get_101_with_the_right_accept(chat, version):
    key = base64.b64encode(b"0123456789abcdef").decode()
    sock = open_connection("127.0.0.1", chat.server_port)
    with sock:
        sock.sendall(upgrade_request("/v", key=key, version=version))
        reader = Reader(sock)
        response = reader.read_response()
        assert response.status_line == "HTTP/1.1 101 Switching Protocols"
        assert response.header("Upgrade").lower() == "websocket"
        assert response.header("Connection").lower() == "upgrade"
        assert response.header("Sec-WebSocket-Accept") == expected_accept(key)
        assert response.header("Sec-WebSocket-Protocol") is None
        assert response.header("Sec-WebSocket-Extensions") is None
        assert reader.read_frame() == (
            True, TEXT, b"protocol=None compress=False version=%s origin=None path=/v"
            % version.encode())


def test_rfc_sample_key(chat):
    """RFC 6455 1.3: dGhlIHNhbXBsZSBub25jZQ== gives s3pPLMBiTxaQ9kYGzzhZRbK+xOo=."""
    response, _ = exchange(chat, upgrade_request(key="dGhlIHNhbXBsZSBub25jZQ=="))
    assert response.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_other_upgrade_passes_through_to_the_app(chat):
    response, _ = exchange(chat, request("GET", "/h2", [("Upgrade", "h2c"),
                                                        ("Connection", "Upgrade")]))
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.body == b"plain HTTP GET /h2"


# -- subprotocols --------------------------------------------------------------------

@pytest.mark.parametrize("offered, chosen", [
    (["chat", "superchat"], "superchat"),  # the server's preference wins
    (["superchat", "chat"], "superchat"),
    (["chat"], "chat"),
    (["other", "chat"], "chat"),
    (["other"], None),
    (None, None),
])
def test_subprotocol_is_the_servers_first_choice_among_offered(chat, offered, chosen):
    with connect(ws_url(chat), subprotocols=offered, open_timeout=TIMEOUT) as websocket:
        assert websocket.subprotocol == chosen
        assert websocket.response.headers.get_all("Sec-WebSocket-Protocol") == (
            [chosen] if chosen else [])
        assert describe_line(websocket).startswith("protocol=%s " % chosen)


def test_subprotocol_offer_in_one_raw_header(chat):
    response, reader = exchange(chat, upgrade_request(
        headers=[("Sec-WebSocket-Protocol", "chat, superchat")]))
    assert response.status_line == "HTTP/1.1 101 Switching Protocols"
    assert response.header("Sec-WebSocket-Protocol") == "superchat"


def test_no_subprotocol_when_the_server_has_none(echo):
    with connect(ws_url(echo), subprotocols=["chat"], open_timeout=TIMEOUT) as websocket:
        assert websocket.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in websocket.response.headers


# -- compression -----------------------------------------------------------------------

def test_compression_negotiated_with_websockets_client(chat):
    with connect(ws_url(chat), open_timeout=TIMEOUT) as websocket:
        header = websocket.response.headers["Sec-WebSocket-Extensions"]
        assert header.split(";")[0].strip() == "permessage-deflate"
        assert " compress=True " in describe_line(websocket)
        message = "compressible " * 50000
        websocket.send(message)
        assert websocket.recv(timeout=TIMEOUT) == message


def test_compression_not_offered_is_not_used(chat):
    with connect(ws_url(chat), compression=None, open_timeout=TIMEOUT) as websocket:
        assert "Sec-WebSocket-Extensions" not in websocket.response.headers
        assert " compress=False " in describe_line(websocket)


def test_compression_declined_when_the_server_disables_it(uncompressed):
    with connect(ws_url(uncompressed), open_timeout=TIMEOUT) as websocket:
        assert "Sec-WebSocket-Extensions" not in websocket.response.headers
        assert " compress=False " in describe_line(websocket)
        websocket.send("x" * 10000)
        assert websocket.recv(timeout=TIMEOUT) == "x" * 10000


def test_compressed_frames_on_the_wire(chat):
    """The server really deflates: RSV1 set, payload inflates to the message."""
    sock, reader, response = upgrade("127.0.0.1", chat.server_port, headers=[
        ("Sec-WebSocket-Extensions", "permessage-deflate")])
    with sock:
        assert response.header("Sec-WebSocket-Extensions").split(";")[0] == "permessage-deflate"
        reader.read_frame(allow_rsv1=True)  # the describe line
        message = b"abc" * 2000
        sock.sendall(client_frame(TEXT, message))  # uncompressed is allowed from the client
        fin, rsv1, opcode, payload = reader.read_frame(allow_rsv1=True)
        assert (fin, rsv1, opcode) == (True, True, TEXT)
        assert len(payload) < 200
        inflater = zlib.decompressobj(-15)
        assert inflater.decompress(payload + b"\x00\x00\xff\xff") == message


@pytest.mark.parametrize("level", [1, 9])
def test_compression_level_is_the_one_the_frames_are_made_with(serve_module, level):
    server = serve_module(WSocketApp(apps.echo, compression_level=level))
    sock, reader, response = upgrade("127.0.0.1", server.server_port, headers=[
        ("Sec-WebSocket-Extensions", "permessage-deflate")])
    # A message whose deflate output differs between levels 1 and 9.
    message = b"".join(b"%d-%d;" % (number, number * 7919 % 1000) for number in range(3000))
    with sock:
        sock.sendall(client_frame(BINARY, message))
        fin, rsv1, opcode, payload = reader.read_frame(allow_rsv1=True)
    assert (fin, rsv1, opcode) == (True, True, BINARY)
    # The server's first message, made as it says: a 4 KiB window, memLevel 5.
    compressor = zlib.compressobj(level, zlib.DEFLATED, -12, 5)
    expected = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert payload == expected[:-4]
    other = zlib.compressobj(10 - level if level != 9 else 1, zlib.DEFLATED, -12, 5)
    assert payload != (other.compress(message) + other.flush(zlib.Z_SYNC_FLUSH))[:-4]


@pytest.mark.parametrize("level", [0, 10, -1, 6.0, "6", True, None])
def test_compression_level_must_be_1_to_9(level):
    with pytest.raises(ValueError) as error:
        WSocketApp(compression_level=level)
    assert str(error.value) == ("compression_level must be a whole number from 1 (fastest) "
                                "to 9 (smallest output), not %r" % (level,))



@pytest.mark.parametrize("option", ["ping_interval", "ping_timeout", "close_timeout"])
@pytest.mark.parametrize("value", [-1, float("nan"), "20"])
def test_timeouts_must_be_seconds_at_least_0(option, value):
    with pytest.raises(ValueError) as error:
        WSocketApp(**{option: value})
    assert str(error.value) == "%s must be None or a number of seconds >= 0, not %r" % (
        option, value)


# -- origins ---------------------------------------------------------------------------

def test_allowed_origin_is_accepted(guarded):
    with connect(ws_url(guarded), origin=ALLOWED_ORIGIN, open_timeout=TIMEOUT) as websocket:
        assert " origin=%s " % ALLOWED_ORIGIN in describe_line(websocket)


@pytest.mark.parametrize("origin", ["https://evil.example", "http://good.example",
                                    "https://good.example:443", None])
def test_other_origin_is_refused_with_403(guarded, origin):
    headers = [("Origin", origin)] if origin else []
    response, _ = exchange(guarded, upgrade_request(headers=headers))
    assert response.status_line == "HTTP/1.1 403 Forbidden"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.header("Sec-WebSocket-Accept") is None
    text = response.body.decode()
    assert text.endswith("\n") and "origin" in text.lower()


def test_refused_origin_seen_by_websockets_client(guarded):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(guarded), origin="https://evil.example", open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 403


def test_draft_origin_header_for_version_8(guarded):
    response, reader = exchange(guarded, upgrade_request(
        version="8", headers=[("Sec-WebSocket-Origin", ALLOWED_ORIGIN)]))
    assert response.status_line == "HTTP/1.1 101 Switching Protocols"


# -- how connections end ---------------------------------------------------------------------

def test_app_exception_after_upgrade_closes_with_1011(fragile):
    with connect(ws_url(fragile), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("fine")
        assert websocket.recv(timeout=TIMEOUT) == "fine"
        websocket.send("boom")
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    # The server goes on: the next client is served as usual.
    with connect(ws_url(fragile), open_timeout=TIMEOUT) as websocket:
        websocket.send("next client")
        assert websocket.recv(timeout=TIMEOUT) == "next client"
    response, _ = exchange(fragile, request("GET", "/plain"))
    assert response.status == 200


def test_app_exception_close_frame_on_the_wire(fragile):
    sock, reader, _ = upgrade("127.0.0.1", fragile.server_port)
    with sock:
        sock.sendall(client_frame(TEXT, "boom"))
        fin, opcode, payload = reader.read_frame()
        assert (fin, opcode) == (True, CLOSE)
        assert struct.unpack("!H", payload[:2])[0] == 1011
        sock.sendall(close_frame(1011))
        elapsed, rest = wait_for_eof(reader, 5)
        assert rest == b""


def test_app_returning_without_closing_gives_1000(bye):
    with connect(ws_url(bye), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        assert websocket.recv(timeout=TIMEOUT) == "bye"
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def test_server_initiated_close_then_prompt_eof_and_no_http_bytes(bye):
    sock, reader, _ = upgrade("127.0.0.1", bye.server_port)
    with sock:
        assert reader.read_frame() == (True, TEXT, b"bye")
        assert reader.read_frame() == (True, CLOSE, struct.pack("!H", 1000))
        sock.sendall(close_frame(1000))
        elapsed, rest = wait_for_eof(reader, 5)
    assert rest == b""  # no HTTP response after the WebSocket
    assert elapsed < 1.5


def test_client_initiated_close_then_prompt_eof_and_no_http_bytes(echo):
    sock, reader, _ = upgrade("127.0.0.1", echo.server_port)
    with sock:
        sock.sendall(client_frame(TEXT, "last words"))
        assert reader.read_frame() == (True, TEXT, b"last words")
        sock.sendall(close_frame(1000, b"done"))
        start = time.monotonic()
        # We never close or half-close our side: the server must end TCP itself.
        elapsed, rest = wait_for_eof(reader, 5)
    assert elapsed < 1.5, "server took %.2f s to close TCP" % elapsed
    assert time.monotonic() - start < 1.5
    # Exactly one frame: the close reply echoing our code, then EOF.
    assert rest[:2] == b"\x88" + bytes([len(rest) - 2])
    assert rest[2:4] == struct.pack("!H", 1000)
    assert b"HTTP" not in rest


def test_client_close_frees_the_server_threads(echo):
    before = threading.active_count()
    sockets = []
    for _ in range(5):
        sock, reader, _ = upgrade("127.0.0.1", echo.server_port)
        sockets.append((sock, reader))
    for sock, reader in sockets:
        sock.sendall(close_frame(1001))
    for sock, reader in sockets:
        with sock:
            _, rest = wait_for_eof(reader, 5)
            assert rest[:4] == b"\x88\x02\x03\xe9"
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= before


# -- bytes that arrive with the upgrade request -------------------------------------------------

def test_frame_in_the_same_packet_as_the_request_is_not_lost(echo):
    early = client_frame(TEXT, "sent with the request")
    sock, reader, _ = upgrade("127.0.0.1", echo.server_port, extra=early)
    with sock:
        assert reader.read_frame() == (True, TEXT, b"sent with the request")


def test_several_frames_and_a_ping_with_the_request(echo):
    extra = (client_frame(TEXT, "one") + client_frame(PING, b"are you there")
             + client_frame(BINARY, b"\x00two", fin=False) + client_frame(0, b"\xffthree")
             + close_frame(1000))
    sock, reader, _ = upgrade("127.0.0.1", echo.server_port, extra=extra)
    with sock:
        frames = [reader.read_frame() for _ in range(4)]
        _, rest = wait_for_eof(reader, 5)
    assert frames[0] == (True, TEXT, b"one")
    assert frames[1] == (True, PONG, b"are you there")
    assert frames[2] == (True, BINARY, b"\x00two\xffthree")
    assert frames[3][:2] == (True, CLOSE) and frames[3][2][:2] == struct.pack("!H", 1000)
    assert rest == b""


def test_partial_frame_with_the_request_is_completed_later(echo):
    whole = client_frame(BINARY, bytes(range(200)))
    sock, reader, _ = upgrade("127.0.0.1", echo.server_port, extra=whole[:7])
    with sock:
        time.sleep(0.05)
        sock.sendall(whole[7:])
        assert reader.read_frame() == (True, BINARY, bytes(range(200)))


# -- a server that cannot hand its socket over -------------------------------------------------

class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def test_server_without_takeover_gets_501_not_a_hang():
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, WSocketApp(apps.echo),
                                               handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        response, _ = exchange(server, upgrade_request())
        assert response.status_line.split(" ", 1)[1] == "501 Not Implemented"
        assert "cannot hand its socket over" in response.body.decode()
        plain, _ = exchange(server, request("GET", "/x", [("Connection", "close")]))
        assert plain.body == b"plain HTTP GET /x"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
