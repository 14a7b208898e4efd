"""WebSockets on wsocket's server: sizes, many clients, TLS, IPv6, stopping."""

import http.client
import logging
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests import apps, loadkit
from tests.netutil import (
    CLOSE, TEXT, TIMEOUT, Reader, client_frame, close_frame, upgrade, upgrade_request, wait_for,
    wait_for_eof, ws_url,
)
from tests.tlspeers import talk_over_tls

MiB = 1024 * 1024
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, MiB, 4 * MiB]


def text_of(size):
    """A str whose UTF-8 encoding is exactly ``size`` bytes, with 1-, 2-, 3- and 4-byte chars."""
    unit = "aé€😀"  # 1 + 2 + 3 + 4 = 10 bytes
    text = unit * (size // 10) + "a" * (size % 10)
    assert len(text.encode("utf-8")) == size
    return text


@pytest.fixture(scope="module")
def big_echo(serve_module):
    return serve_module(apps.echo, max_message_size=8 * MiB)


@pytest.mark.parametrize("compression", ["deflate", None])
@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("size", SIZES)
def test_echo_exact_message_sizes(big_echo, size, kind, compression):
    message = text_of(size) if kind == "text" else os.urandom(size)
    with connect(ws_url(big_echo), max_size=None, compression=compression,
                 open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send(message)
        answer = websocket.recv(timeout=30)
    assert type(answer) is type(message)
    assert answer == message


def test_raw_echo_uses_the_smallest_length_encoding(big_echo):
    """Server frames: 7-bit length up to 125, 16-bit up to 65535, 64-bit above."""
    sock = socket.create_connection(("127.0.0.1", big_echo.server_port), timeout=TIMEOUT)
    with sock:
        sock.sendall(upgrade_request())
        reader = Reader(sock)
        assert reader.read_response().status == 101
        for size, header in [(125, b"\x82\x7d"), (126, b"\x82\x7e\x00\x7e"),
                             (65535, b"\x82\x7e\xff\xff"),
                             (65536, b"\x82\x7f" + struct.pack("!Q", 65536))]:
            payload = os.urandom(size)
            sock.sendall(client_frame(0x2, payload))
            assert reader.read_exact(len(header)) == header
            assert reader.read_exact(size) == payload


def test_default_limit_is_one_mebibyte(serve):
    server = serve(apps.echo)
    with connect(ws_url(server), max_size=None, compression=None,
                 open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send(b"\x01" * MiB)
        assert websocket.recv(timeout=TIMEOUT) == b"\x01" * MiB
        websocket.send(b"\x01" * (MiB + 1))
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_command_line_server_echoes_four_mebibytes(wsocket_process):
    server = wsocket_process("tests.apps:echo_unlimited", "--port", "0")
    message = os.urandom(4 * MiB)
    with connect(server.ws_url, max_size=None, open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as websocket:
        websocket.send(message)
        assert websocket.recv(timeout=30) == message
        websocket.send(text_of(4 * MiB))
        assert websocket.recv(timeout=30) == text_of(4 * MiB)


# -- many clients at once ------------------------------------------------------------------------

def test_200_simultaneous_websockets_while_http_is_served(echo_process):
    count = 200
    with ExitStack() as stack:
        clients = [stack.enter_context(connect(echo_process.ws_url, open_timeout=TIMEOUT,
                                               close_timeout=TIMEOUT, compression=None))
                   for _ in range(count)]
        start = threading.Barrier(count + 1, timeout=TIMEOUT)

        def chat(index):
            websocket = clients[index]
            start.wait()
            answers = []
            for round_ in range(3):
                message = "client %d round %d" % (index, round_)
                websocket.send(message)
                answers.append(websocket.recv(timeout=TIMEOUT) == message)
            websocket.send(b"%d" % index)
            answers.append(websocket.recv(timeout=TIMEOUT) == b"%d" % index)
            return all(answers)

        with ThreadPoolExecutor(count) as pool:
            results = [pool.submit(chat, index) for index in range(count)]
            start.wait()
            # Plain HTTP on the same port while all 200 WebSockets talk.
            connection = http.client.HTTPConnection("127.0.0.1", echo_process.port,
                                                    timeout=TIMEOUT)
            try:
                for number in range(20):
                    connection.request("GET", "/page/%d" % number)
                    answer = connection.getresponse()
                    assert answer.status == 200
                    assert answer.read() == b"plain HTTP GET /page/%d" % number
            finally:
                connection.close()
            assert [result.result(timeout=60) for result in results] == [True] * count
    assert all(websocket.close_code == 1000 for websocket in clients)


# -- TLS ------------------------------------------------------------------------------------------

def test_hundreds_of_connection_threads_lengthen_the_gil_switch_interval_for_a_while(serve):
    # Each thread waiting for the GIL wakes once per interval: with thousands
    # of them the interval grows with the count (ThreadingWSGIServer.paces_gil),
    # and the process's own comes back when the threads end.
    loadkit.raise_nofile(4096)
    own = sys.getswitchinterval()
    server = serve(apps.echo)
    crowd = loadkit.Crowd(server.server_port, 600)
    try:
        crowd.open(timeout=60)
        assert (crowd.lost, crowd.wrong, len(crowd.held)) == ([], [], 600)
        assert sys.getswitchinterval() > 0.025  # 50 us a thread, in steps of 256: 512 * 50 us
        crowd.close(timeout=60, concurrency=600)  # every close frame at once
        assert crowd.closed_cleanly == 600
        wait_for(lambda: sys.getswitchinterval() == own, what="the process's own interval")
    finally:
        crowd.abort()
        sys.setswitchinterval(own)


def test_wss_and_https_with_certfile_and_keyfile(wsocket_process, certificate):
    server = wsocket_process("tests.apps:echo", "--port", "0",
                             "--certfile", certificate["certfile"],
                             "--keyfile", certificate["keyfile"])
    assert server.url == "https://127.0.0.1:%d/" % server.port
    assert server.ws_url.startswith("wss://127.0.0.1:")
    big = os.urandom(300000)
    assert talk_over_tls(server.ws_url, certificate["context"], ["over TLS", big],
                         max_size=None) == ["over TLS", big]
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=TIMEOUT,
                                             context=certificate["context"])
    try:
        for path in ("/secure", "/again"):
            connection.request("GET", path)
            answer = connection.getresponse()
            assert (answer.status, answer.read()) == (200, b"plain HTTP GET " + path.encode())
    finally:
        connection.close()


def test_wss_with_key_inside_certfile(wsocket_process, certificate):
    server = wsocket_process("tests.apps:echo", "--port", "0",
                             "--certfile", certificate["combined"])
    assert talk_over_tls(server.ws_url, certificate["context"],
                         [b"binary over TLS"]) == [b"binary over TLS"]


def test_wss_close_handshake_and_eof_on_raw_tls(serve, certificate):
    server = serve(apps.echo, certfile=certificate["certfile"], keyfile=certificate["keyfile"])
    assert server.url.startswith("https://")
    raw = socket.create_connection(("127.0.0.1", server.server_port), timeout=TIMEOUT)
    with certificate["context"].wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(upgrade_request() + client_frame(TEXT, "early over TLS"))
        reader = Reader(sock)
        assert reader.read_response().status == 101
        assert reader.read_frame() == (True, TEXT, b"early over TLS")
        sock.sendall(close_frame(1000))
        assert reader.read_frame() == (True, CLOSE, struct.pack("!H", 1000))
        try:
            elapsed, rest = wait_for_eof(reader, 5)
        except ssl.SSLError:
            rest = b""  # a TCP FIN without TLS close_notify is an acceptable end here
        assert rest == b""


def test_failed_tls_handshakes_are_not_errors(serve, certificate, caplog):
    """Plain HTTP on the TLS port, or a connection closed at once: no traceback, serving on."""
    server = serve(apps.echo, certfile=certificate["certfile"], keyfile=certificate["keyfile"])
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert not sock.recv(4096).startswith(b"HTTP/")
        except ConnectionResetError:
            pass
    socket.create_connection(("127.0.0.1", server.server_port), timeout=TIMEOUT).close()
    url = ws_url(server).replace("ws://", "wss://")
    assert talk_over_tls(url, certificate["context"], ["fine"]) == ["fine"]
    errors = [record for record in caplog.records
              if record.name == "wsocket" and record.levelno >= logging.ERROR]
    assert errors == []


# -- IPv6 ----------------------------------------------------------------------------------------

def test_ipv6_loopback(wsocket_process):
    server = wsocket_process("tests.apps:echo", "--host", "::1", "--port", "0")
    assert server.url == "http://[::1]:%d/" % server.port
    with connect(server.ws_url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("over IPv6")
        assert websocket.recv(timeout=TIMEOUT) == "over IPv6"
    connection = http.client.HTTPConnection("::1", server.port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/six")
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (200, b"plain HTTP GET /six")
    finally:
        connection.close()


def test_ipv6_in_process(serve):
    server = serve(apps.echo, host="::1")
    assert server.url == "http://[::1]:%d/" % server.server_port
    with connect(ws_url(server), open_timeout=TIMEOUT) as websocket:
        websocket.send(b"six")
        assert websocket.recv(timeout=TIMEOUT) == b"six"


# -- stopping ------------------------------------------------------------------------------------

def test_sigterm_closes_50_websockets_with_1001_and_exits_0(wsocket_process):
    server = wsocket_process("tests.apps:echo", "--port", "0")
    with ExitStack() as stack:
        clients = [stack.enter_context(connect(server.ws_url, open_timeout=TIMEOUT,
                                               close_timeout=TIMEOUT))
                   for _ in range(50)]
        for index, websocket in enumerate(clients):
            websocket.send("hello %d" % index)
        for index, websocket in enumerate(clients):
            assert websocket.recv(timeout=TIMEOUT) == "hello %d" % index
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        codes = []
        for websocket in clients:
            with pytest.raises(ConnectionClosed) as closed:
                websocket.recv(timeout=TIMEOUT)
            codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
        status = server.proc.wait(timeout=10)
        elapsed = time.monotonic() - started
    assert codes == [1001] * 50
    assert status == 0
    assert elapsed < 5, "took %.1f s to stop" % elapsed
    assert "Traceback" not in server.stderr()


def test_sigterm_with_idle_http_connection_exits_0(wsocket_process):
    server = wsocket_process("tests.apps:echo", "--port", "0")
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    with idle:
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        Reader(idle).read_response()  # the connection now waits for a next request
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=10) == 0
        assert Reader(idle).read_to_eof() == b""


def test_sigterm_while_the_accepting_thread_lags_leaves_the_served_connection_to_its_thread(
        wsocket_process):
    # The signal lands while the accepting thread is still in process_request,
    # after the connection's thread answered. A signal that raised there
    # would close that connection under its thread (a traceback, EBADF).
    server = wsocket_process(module="tests.slow_accept_server")
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    with idle:
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        Reader(idle).read_response()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0
        assert Reader(idle).read_to_eof() == b""
    assert "Traceback" not in server.stderr()


def test_ctrl_c_stops_the_server_as_sigterm_does(wsocket_process):
    server = wsocket_process("tests.apps:echo", "--port", "0")
    with connect(server.ws_url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("x")
        assert websocket.recv(timeout=TIMEOUT) == "x"
        server.proc.send_signal(signal.SIGINT)
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert server.proc.wait(timeout=20) == 0
    stderr = server.stderr()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


def test_sigint_ignored_at_start_stays_ignored(wsocket_process):
    # A server started as a background job (&) in a script ignores Ctrl-C;
    # run() keeps it so, and SIGTERM still stops it.
    server = wsocket_process("tests.apps:echo", "--port", "0", ignore_sigint=True)
    server.proc.send_signal(signal.SIGINT)
    with connect(server.ws_url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("still here")
        assert websocket.recv(timeout=TIMEOUT) == "still here"
    assert server.proc.poll() is None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=20) == 0
    assert "Traceback" not in server.stderr()


def test_stop_in_process_closes_websockets_with_1001(serve):
    server = serve(apps.echo)
    with ExitStack() as stack:
        clients = [stack.enter_context(connect(ws_url(server), open_timeout=TIMEOUT,
                                               close_timeout=TIMEOUT))
                   for _ in range(5)]
        for websocket in clients:
            websocket.send("x")
            assert websocket.recv(timeout=TIMEOUT) == "x"
        started = time.monotonic()
        server.stop(timeout=5)
        assert time.monotonic() - started < 3
        for websocket in clients:
            with pytest.raises(ConnectionClosed) as closed:
                websocket.recv(timeout=TIMEOUT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.server_port), timeout=2).close()


# -- TCP options --------------------------------------------------------------------------------

def _capturing_echo():
    """An event-app echo that keeps its server-side WebSocket objects."""
    from wsocket import WSocketApp
    app = WSocketApp()
    seen = []
    app.onconnect += seen.append
    app.onmessage += lambda message, client: client.send(message)
    return app, seen


def test_server_sockets_send_without_nagle_delay(serve):
    app, seen = _capturing_echo()
    server = serve(app)
    with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("hi")
        assert websocket.recv(timeout=TIMEOUT) == "hi"
        [client] = seen
        assert client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def _capturing_wsgi_echo():
    """A WSGI loop echo that keeps its server-side WebSocket objects."""
    from wsocket import WSocketApp
    seen = []

    def echo(environ, start_response):
        websocket = environ["wsgi.websocket"]
        seen.append(websocket)
        for message in websocket:
            websocket.send(message)
        return []

    return WSocketApp(echo), seen


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="no TCP_CORK here")
@pytest.mark.parametrize("style", ["wsgi", "events"])
def test_pipelined_answers_leave_together_then_nothing_is_held(serve, monkeypatch, style):
    # Messages that arrive together are answered in one transmission: a WSGI
    # loop corks the socket (TCP_CORK) while it answers them, the event app
    # holds the answers in its queue and sends them in one write. Once they
    # are all answered nothing may be held back: a corked socket would keep
    # the last answers for the kernel's 200 ms timer.
    from wsocket._transport import SocketTransport
    corks = []
    real_cork = SocketTransport.cork

    def recording_cork(transport, on):
        corks.append(on)
        real_cork(transport, on)

    monkeypatch.setattr(SocketTransport, "cork", recording_cork)
    app, seen = _capturing_wsgi_echo() if style == "wsgi" else _capturing_echo()
    server = serve(app)
    sock, reader, _ = upgrade("127.0.0.1", server.server_port)
    with sock:
        sock.sendall(b"".join(client_frame(TEXT, "message %d" % number) for number in range(50)))
        for number in range(50):
            assert reader.read_frame() == (True, TEXT, b"message %d" % number)
        [client] = seen
        wait_for(lambda: client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0,
                 what="the socket uncorked")
        assert not client._transport.corked
        assert client._transport.can_cork
        if style == "wsgi":
            assert corks[:1] == [True] and corks[-1] is False
        else:
            assert corks == []  # held in the queue instead, and sent
            wait_for(lambda: not client._sender.holding and not client._sender.queue.frames,
                     what="nothing held")


def test_a_long_pipelined_batch_is_answered_in_parts_and_in_order(serve, monkeypatch):
    # The event app answers a batch of messages together, but with no other
    # connection waiting for its loop, in parts of HOLD_PART: the client gets
    # the first answers while the rest are worked out.
    from wsocket._outgoing import OutgoingQueue
    from wsocket._sending import HOLD_PART
    parts = []
    real_flush = OutgoingQueue.flush

    def recording_flush(queue, transport, until=None):
        parts.append(len(queue.frames))
        return real_flush(queue, transport, until)

    monkeypatch.setattr(OutgoingQueue, "flush", recording_flush)
    app, seen = _capturing_echo()
    server = serve(app)
    sock, reader, _ = upgrade("127.0.0.1", server.server_port)
    count = 5 * HOLD_PART + 3
    with sock:
        sock.sendall(b"".join(client_frame(TEXT, "message %d" % number)
                              for number in range(count)))
        for number in range(count):
            assert reader.read_frame() == (True, TEXT, b"message %d" % number)
        [client] = seen
        wait_for(lambda: not client._sender.holding and not client._sender.queue.frames,
                 what="nothing held")
    assert HOLD_PART in parts and max(parts) == HOLD_PART, parts
