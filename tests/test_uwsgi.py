"""uWSGI beyond the server matrix: refusals, keepalive, the hub, Redis, nginx's uwsgi_pass.

tests/test_servers.py runs the matrix (echo of every size, compression,
subprotocols, close codes both ways, 20 clients) on uWSGI's three modes
(--threads, --processes, --gevent) and its --http router; here is what
is particular to uWSGI or left out there. Every server is a real uWSGI
process (the ``uwsgi`` pip built), every client a real one.
"""

import base64
import shutil

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests import matrix_app
from tests.netutil import (
    TEXT, Reader, client_frame, close_frame, open_connection, request, upgrade_request,
)
from tests.serverproc import (
    assert_clean_end, free_port, recording_socket, start_server, uwsgi,
)
from tests.test_hub import clients, command, join, reply  # noqa: F401 (a fixture)
from tests.test_hub_redis import redis_server  # noqa: F401 (a fixture)
from tests.test_nginx import MAIN_CONFIG

TIMEOUT = 20.0
PING, PONG = 0x9, 0xA

MODES = {
    "threads": ["--threads", "20"],
    "processes": ["--master", "--processes", "4"],
    "gevent": ["--gevent", "100"],
}


def start_uwsgi(tmp_path, mode, module="tests.matrix_app:checked", name="uwsgi"):
    return start_server("%s-%s" % (name, mode),
                        uwsgi("--http-socket", "127.0.0.1:{port}", *MODES[mode], module=module),
                        tmp_path / ("%s-%s-stderr.txt" % (name, mode)))


@pytest.fixture(scope="module", params=sorted(MODES))
def checked_server(request, tmp_path_factory):
    """``tests.matrix_app:checked`` (one allowed origin, pings every 0.5 s) on each mode."""
    server = start_uwsgi(tmp_path_factory.mktemp("uwsgi"), request.param)
    yield server
    server.stop()
    server.assert_no_errors()


def exchange(server, data):
    sock = open_connection("127.0.0.1", server.port, TIMEOUT)
    with sock:
        sock.sendall(data)
        return Reader(sock).read_response()


def test_refusals_before_the_101_get_their_status_and_the_server_goes_on(checked_server):
    server = checked_server
    host = "127.0.0.1:%d" % server.port
    good = [("Origin", matrix_app.GOOD_ORIGIN)]
    forbidden = exchange(server, upgrade_request(
        "/", host=host, headers=[("Origin", "https://evil.example")]))
    assert forbidden.status == 403, forbidden
    assert forbidden.header("Upgrade") is None
    old_version = exchange(server, upgrade_request("/", host=host, version="6", headers=good))
    assert old_version.status == 426, old_version
    assert old_version.header("Sec-WebSocket-Version") == "13, 8, 7"
    no_key = exchange(server, upgrade_request("/", host=host, omit={"sec-websocket-key"},
                                              headers=good))
    assert no_key.status == 400, no_key
    plain = exchange(server, request("GET", "/page", [("Connection", "close")], host=host))
    assert (plain.status, plain.body) == (200, b"plain HTTP GET /page")
    with connect(server.ws_url + "/describe", origin=matrix_app.GOOD_ORIGIN,
                 subprotocols=["chat"], open_timeout=TIMEOUT) as connection:
        assert connection.recv(timeout=TIMEOUT) == "protocol=chat compress=True"
    server.assert_no_errors()
    assert "Traceback" not in server.stderr()


def test_an_upgrade_with_a_body_breaks_nothing(checked_server):
    """The body stays in uWSGI's parser: the upgrade is refused, or the WebSocket works."""
    server = checked_server
    host = "127.0.0.1:%d" % server.port
    sock = open_connection("127.0.0.1", server.port, TIMEOUT)
    with sock:
        sock.sendall(upgrade_request("/", host=host, headers=[
            ("Origin", matrix_app.GOOD_ORIGIN), ("Content-Length", "5")]) + b"hello")
        reader = Reader(sock)
        response = reader.read_response()
        assert response.status in (101, 400), response
        if response.status == 101:
            sock.sendall(client_frame(TEXT, "after the body"))
            assert skip_pings(reader) == (True, TEXT, b"after the body")
            sock.sendall(close_frame(1000))
            assert skip_pings(reader) == (True, 0x8, b"\x03\xe8")
    assert "Traceback" not in server.stderr()
    server.assert_no_errors()


def skip_pings(reader):
    """The next frame that is not one of the server's keepalive pings (answered)."""
    while True:
        frame = reader.read_frame()
        if frame[1] != PING:
            return frame
        reader.sock.sendall(client_frame(PONG, frame[2]))


def test_keepalive_pings_go_out_and_a_silent_client_is_dropped(checked_server):
    server = checked_server
    sock = open_connection("127.0.0.1", server.port, TIMEOUT)
    with sock:
        sock.sendall(upgrade_request("/", host="127.0.0.1:%d" % server.port,
                                     headers=[("Origin", matrix_app.GOOD_ORIGIN)]))
        reader = Reader(sock)
        assert reader.read_response().status == 101
        for _ in range(3):  # answered pings keep it open
            fin, opcode, payload = reader.read_frame()
            assert (fin, opcode) == (True, PING)
            sock.sendall(client_frame(PONG, payload))
        sock.sendall(client_frame(TEXT, "still open"))
        assert skip_pings(reader) == (True, TEXT, b"still open")
        # No more pongs: the server gives up after ping_timeout and ends the connection.
        sock.settimeout(TIMEOUT)
        rest = reader.read_to_eof()
        assert rest == b"" or rest[0] & 0x0F in (PING, 0x8)
    server.assert_no_errors()


@pytest.mark.parametrize("mode", ["threads", "gevent"])
def test_hub_broadcast_and_rooms_between_clients_of_one_uwsgi(tmp_path, clients, mode):
    server = start_uwsgi(tmp_path, mode, module="tests.hub_apps:app", name="hub")
    try:
        new = clients(server.ws_url)
        red, also_red, blue = new(), new(), new()
        join(red, "red")
        join(also_red, "red")
        join(blue, "blue")
        command(blue, say="to red \u2603", room="red")
        assert [red.recv(timeout=TIMEOUT), also_red.recv(timeout=TIMEOUT)] == ["to red \u2603"] * 2
        every_byte = bytes(range(256))
        command(red, say_b64=base64.b64encode(every_byte).decode())
        assert [client.recv(timeout=TIMEOUT) for client in (red, also_red, blue)] \
            == [every_byte] * 3
        command(red, count=None)
        assert reply(red) == {"count": 3}
    finally:
        server.stop()
    server.assert_no_errors()


def test_redis_hub_across_the_processes_of_one_uwsgi(
        tmp_path, clients, redis_server):  # noqa: F811 (fixtures)
    """--processes 3: three open WebSockets hold the three processes; Redis joins them."""
    # The hub's Redis threads start when the app is imported, before uWSGI
    # forks its workers: --py-call-uwsgi-fork-hooks lets CPython know of the fork.
    server = start_server("uwsgi-redis", uwsgi(
        "--http-socket", "127.0.0.1:{port}", "--master", "--processes", "3",
        "--py-call-uwsgi-fork-hooks", module="tests.hub_apps:app"), tmp_path / "stderr.txt",
        env={"WSOCKET_HUB": redis_server.url})
    try:
        new = clients(server.ws_url)
        everyone = [new(), new(), new()]
        for client in everyone:
            command(client, count=None)
            assert reply(client) == {"count": 1}  # each alone in its process
        join(everyone[0], "red")
        join(everyone[2], "red")
        command(everyone[1], say="across processes")
        assert [client.recv(timeout=TIMEOUT) for client in everyone] == ["across processes"] * 3
        command(everyone[1], say="red only", room="red")
        assert [everyone[0].recv(timeout=TIMEOUT), everyone[2].recv(timeout=TIMEOUT)] \
            == ["red only"] * 2
        command(everyone[0], say="marker")
        assert [client.recv(timeout=TIMEOUT) for client in everyone] == ["marker"] * 3
    finally:
        server.stop()
    server.assert_no_errors()


# -- nginx's uwsgi_pass in front of uwsgi --socket ----------------------------------------

# The location of docs/deploying.md for uwsgi_pass.
UWSGI_PASS_SITE = """
server {{
    listen 127.0.0.1:{port};
    location / {{
        include /etc/nginx/uwsgi_params;
        uwsgi_pass 127.0.0.1:{app_port};
        uwsgi_read_timeout 300s;
        uwsgi_send_timeout 300s;
    }}
}}
"""


@pytest.fixture(scope="module")
def nginx_uwsgi_pass(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx-uwsgi")
    app_port = free_port()
    app = start_server("uwsgi-socket", uwsgi("--socket", "127.0.0.1:{port}", "--threads", "20"),
                       tmp / "app-stderr.txt", port=app_port)
    port = free_port()
    (tmp / "wsocket.conf").write_text(UWSGI_PASS_SITE.format(port=port, app_port=app_port))
    (tmp / "nginx.conf").write_text(MAIN_CONFIG.format(tmp=tmp))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    try:
        proxy = start_server("nginx", [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
                                       "-e", str(tmp / "error.log")],
                             tmp / "nginx-stderr.txt", port=port)
    except BaseException:
        app.stop()
        raise
    proxy.app = app
    proxy.error_log = tmp / "error.log"
    yield proxy
    proxy.stop()
    app.stop()
    app.assert_no_errors()


def test_nginx_uwsgi_pass_carries_the_websocket(nginx_uwsgi_pass):
    proxy = nginx_uwsgi_pass
    sock = recording_socket(proxy.port)
    with connect(proxy.ws_url + "/describe", sock=sock, subprotocols=["chat"],
                 open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                 max_size=matrix_app.MAX_MESSAGE_SIZE) as connection:
        assert connection.subprotocol == "chat"
        assert connection.recv(timeout=TIMEOUT) == "protocol=chat compress=True"
        message = "through uwsgi_pass " * 50000
        connection.send(message)
        assert connection.recv(timeout=TIMEOUT) == message
        connection.send(b"\x00\xff" * 40000)
        assert connection.recv(timeout=TIMEOUT) == b"\x00\xff" * 40000
        assert_clean_end(connection, sock)
    assert connection.close_code == 1000
    sock = recording_socket(proxy.port)
    with connect(proxy.ws_url + "/close", sock=sock, open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as connection:
        assert connection.recv(timeout=TIMEOUT) == "closing"
        with pytest.raises(ConnectionClosed) as closed:
            connection.recv(timeout=TIMEOUT)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            matrix_app.CLOSE_CODE, matrix_app.CLOSE_REASON)
        assert_clean_end(connection, sock)
    proxy.app.assert_no_errors()
    assert proxy.error_log.read_text() == "", proxy.error_log.read_text()



FASTCGI_SITE = """
server {{
    listen 127.0.0.1:{port};
    location / {{
        include /etc/nginx/fastcgi_params;
        fastcgi_pass 127.0.0.1:{app_port};
    }}
}}
"""


def test_a_fastcgi_socket_is_refused_with_a_clear_501_and_the_http_socket_next_to_it_works(
        tmp_path):
    """nginx's fastcgi_pass in front of uwsgi --fastcgi-socket: FastCGI records wrap every byte.

    The same uWSGI also has an --http-socket: the listening socket of each
    connection decides, so a WebSocket there works.
    """
    app_port, port, http_port = free_port(), free_port(), free_port()
    app = start_server("uwsgi-fastcgi", uwsgi("--fastcgi-socket", "127.0.0.1:{port}",
                                              "--http-socket", "127.0.0.1:%d" % http_port,
                                              "--threads", "4"),
                       tmp_path / "app-stderr.txt", port=app_port)
    try:
        (tmp_path / "wsocket.conf").write_text(FASTCGI_SITE.format(port=port, app_port=app_port))
        (tmp_path / "nginx.conf").write_text(MAIN_CONFIG.format(tmp=tmp_path))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        proxy = start_server("nginx", [binary, "-p", str(tmp_path), "-c",
                                       str(tmp_path / "nginx.conf"), "-e",
                                       str(tmp_path / "error.log")],
                             tmp_path / "nginx-stderr.txt", port=port)
        try:
            host = "127.0.0.1:%d" % port
            response = exchange(proxy, upgrade_request("/", host=host))
            assert response.status == 501, response
            assert b"came over uWSGI's --fastcgi-socket" in response.body
            assert b"uwsgi --http-socket 127.0.0.1:8000" in response.body
            plain = exchange(proxy, request("GET", "/page", [("Connection", "close")],
                                            host=host))
            # (fastcgi_params sets no PATH_INFO)
            assert (plain.status, plain.body) == (200, b"plain HTTP GET /")
        finally:
            proxy.stop()
        with connect("ws://127.0.0.1:%d/describe" % http_port, subprotocols=["chat"],
                     open_timeout=TIMEOUT) as connection:
            assert connection.recv(timeout=TIMEOUT) == "protocol=chat compress=True"
            connection.send("over the HTTP socket")
            assert connection.recv(timeout=TIMEOUT) == "over the HTTP socket"
    finally:
        app.stop()
    logged = [line for line in app.stderr().splitlines() if "WebSocket upgrade refused" in line]
    assert logged and "--fastcgi-socket" in logged[0]
    assert "Traceback" not in app.stderr()


@pytest.mark.parametrize("mode", ["threads", "gevent"])
def test_the_connection_can_be_taken_late_in_the_apps_call(tmp_path, mode):
    """take_over() while the app runs (not before it): the same socket, and nothing after."""
    server = start_uwsgi(tmp_path, mode, module="tests.matrix_app:late_takeover", name="late")
    try:
        sock = open_connection("127.0.0.1", server.port, TIMEOUT)
        with sock:
            sock.sendall(upgrade_request("/", host="127.0.0.1:%d" % server.port))
            reader = Reader(sock)
            assert reader.read_response().status == 101
            assert reader.read_frame() == (True, TEXT, b"late")
            assert reader.read_to_eof() == b""  # uWSGI wrote nothing after the app
    finally:
        server.stop()
    server.assert_no_errors()
