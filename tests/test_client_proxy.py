"""wsocket.connect() through real proxies: Debian's tinyproxy (HTTP CONNECT) and microsocks (SOCKS5).

Each proxy runs as a subprocess on a free port of 127.0.0.1, with a config
written for the test; the servers behind them are wsocket's own (in-process)
or the websockets library's. Proxies from the environment are read from
``os.environ`` at each connection, so the tests set the variables with
monkeypatch after clearing any the machine has.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
import trustme
from websockets.sync.server import serve as websockets_serve

from wsocket import ConnectError, connect
from wsocket.client.proxy import Proxy, proxy_from_environment
from tests.netutil import ROOT, wait_for
from tests.serverproc import free_port, start_server

pytestmark = pytest.mark.skipif(
    not (shutil.which("tinyproxy") and shutil.which("microsocks")),
    reason="needs Debian's tinyproxy and microsocks")

PROXY_VARIABLES = ("http_proxy", "https_proxy", "ws_proxy", "wss_proxy", "socks_proxy",
                   "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def clean_proxy_environment(monkeypatch):
    """No proxy variable from the machine leaks into a test."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)


@pytest.fixture
def tinyproxy(tmp_path):
    """Factory: ``tinyproxy(connect_ports, auth=None)`` runs ``tinyproxy -d`` on a free port.

    tinyproxy allows CONNECT only to the ``ConnectPort``s of its config;
    ``auth`` is a (user, password) pair for ``BasicAuth``. Stopped at teardown.
    """
    started = []

    def start(connect_ports, auth=None):
        port = free_port()
        lines = ["Port %d" % port, "Listen 127.0.0.1", "Timeout 30", "LogLevel Info",
                 "MaxClients 20", "Allow 127.0.0.1"]
        lines += ["ConnectPort %d" % allowed for allowed in connect_ports]
        if auth:
            lines.append("BasicAuth %s %s" % auth)
        config = tmp_path / ("tinyproxy-%d.conf" % len(started))
        config.write_text("\n".join(lines) + "\n")
        server = start_server("tinyproxy", ["tinyproxy", "-d", "-c", str(config)],
                              tmp_path / ("tinyproxy-%d.log" % len(started)), port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def microsocks(tmp_path):
    """Factory: ``microsocks(auth=None)`` runs microsocks on a free port; stopped at teardown."""
    started = []

    def start(auth=None):
        command = ["microsocks", "-i", "127.0.0.1", "-p", "{port}"]
        if auth:
            command += ["-u", auth[0], "-P", auth[1]]
        server = start_server("microsocks", command,
                              tmp_path / ("microsocks-%d.log" % len(started)))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def report_headers(environ, start_response):
    """Sends the request's Host and path as JSON, then echoes."""
    websocket = environ["wsgi.websocket"]
    websocket.send(json.dumps({"host": environ.get("HTTP_HOST"), "path": websocket.path}))
    for message in websocket:
        websocket.send(message)
    return []


@pytest.fixture
def origin(serve):
    """A wsocket server (in-process) behind the proxies: ``(port, server)``."""
    server = serve(report_headers)
    return server.server_address[1], server


@pytest.fixture
def tls_origin(serve, certificate):
    """The same over TLS, with the certificate fixture's CA trusted by the client context."""
    server = serve(report_headers, certfile=certificate["certfile"],
                   keyfile=certificate["keyfile"])
    return server.server_address[1], server


def talk(websocket, expected_host):
    hello = json.loads(websocket.receive(timeout=10))
    assert hello == {"host": expected_host, "path": "/through"}
    websocket.send("through the tunnel")
    assert websocket.receive(timeout=10) == "through the tunnel"


def connects_seen(proxy_server):
    """The CONNECT request lines tinyproxy logged."""
    return [line.split("): ", 1)[1] for line in proxy_server.stderr().splitlines()
            if "Request (file descriptor" in line]


# -- HTTP CONNECT ------------------------------------------------------------------

def test_http_connect_proxy(tinyproxy, origin):
    port, _ = origin
    proxy = tinyproxy([port])
    with connect("ws://127.0.0.1:%d/through" % port, proxy=proxy.url) as ws:
        talk(ws, "127.0.0.1:%d" % port)
    assert ws.close_code == 1000
    assert connects_seen(proxy) == ["CONNECT 127.0.0.1:%d HTTP/1.1" % port]


def test_http_connect_proxy_with_basic_auth(tinyproxy, origin):
    port, _ = origin
    proxy = tinyproxy([port], auth=("alice", "s3cret"))
    with connect("ws://127.0.0.1:%d/through" % port,
                 proxy="http://alice:s3cret@127.0.0.1:%d" % proxy.port) as ws:
        talk(ws, "127.0.0.1:%d" % port)


@pytest.mark.parametrize("credentials, status", [
    ("", "407 Proxy Authentication Required"),
    ("alice:wrong@", "401 Unauthorized"),  # what tinyproxy answers to wrong credentials
])
def test_http_proxy_refuses_without_the_right_credentials(tinyproxy, origin, credentials,
                                                          status):
    port, _ = origin
    proxy = tinyproxy([port], auth=("alice", "s3cret"))
    with pytest.raises(ConnectError) as raised:
        connect("ws://127.0.0.1:%d/through" % port,
                proxy="http://%s127.0.0.1:%d" % (credentials, proxy.port))
    assert type(raised.value) is ConnectError
    # The message names the proxy, never with its password.
    assert str(raised.value) == (
        "HTTP proxy http://127.0.0.1:%d refused to open a tunnel to 127.0.0.1:%d: %s"
        % (proxy.port, port, status))


def test_http_proxy_refuses_a_port_it_does_not_allow(tinyproxy, origin):
    port, _ = origin
    proxy = tinyproxy([443])
    with pytest.raises(ConnectError) as raised:
        connect("ws://127.0.0.1:%d/through" % port, proxy=proxy.url)
    assert type(raised.value) is ConnectError
    assert str(raised.value) == ("HTTP proxy http://127.0.0.1:%d refused to open a tunnel to "
                                 "127.0.0.1:%d: 403 Access violation" % (proxy.port, port))


def test_http_proxy_that_cannot_reach_the_origin(tinyproxy):
    closed = free_port()
    proxy = tinyproxy([closed])
    with pytest.raises(ConnectError) as raised:
        connect("ws://127.0.0.1:%d/" % closed, proxy=proxy.url)
    assert type(raised.value) is ConnectError
    assert str(raised.value) == ("HTTP proxy http://127.0.0.1:%d refused to open a tunnel to "
                                 "127.0.0.1:%d: 500 Unable to connect" % (proxy.port, closed))


def test_proxy_that_is_not_there():
    closed = free_port()
    with pytest.raises(ConnectError) as raised:
        connect("ws://127.0.0.1:1/", proxy="http://user:pw@127.0.0.1:%d" % closed)
    assert type(raised.value) is ConnectError
    assert str(raised.value) == ("cannot connect to HTTP proxy http://127.0.0.1:%d: "
                                 "[Errno 111] Connection refused" % closed)


def test_wss_through_http_proxy(tinyproxy, tls_origin, certificate):
    port, _ = tls_origin
    proxy = tinyproxy([port])
    with connect("wss://localhost:%d/through" % port, proxy=proxy.url,
                 ssl_context=certificate["context"]) as ws:
        assert isinstance(ws.sock, ssl.SSLSocket)
        talk(ws, "localhost:%d" % port)
    # The proxy was asked for the origin by its name: it never saw more than that.
    assert connects_seen(proxy) == ["CONNECT localhost:%d HTTP/1.1" % port]


# -- TLS inside the tunnel is with the origin -------------------------------------------

@pytest.fixture
def sni_server():
    """A websockets TLS server with a certificate for other.test only, recording SNI names."""
    authority = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("other.test", "localhost").configure_cert(server_context)
    names = []
    server_context.sni_callback = lambda sslobj, name, context: names.append(name)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    def handler(connection):
        for message in connection:
            connection.send(message)

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with websockets_serve(handler, sock=listener, ssl=server_context) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield port, names, client_context
        finally:
            server.shutdown()
            thread.join(5)


@pytest.mark.parametrize("kind", ["http", "socks5h"])
def test_tls_in_the_tunnel_uses_the_origin_name(kind, sni_server, tinyproxy, microsocks):
    port, names, client_context = sni_server
    proxy = tinyproxy([port]) if kind == "http" else microsocks()
    proxy_url = "%s://127.0.0.1:%d" % (kind, proxy.port)
    with connect("wss://localhost:%d/" % port, proxy=proxy_url,
                 ssl_context=client_context) as ws:
        ws.send("sni")
        assert ws.receive(timeout=10) == "sni"
    assert names == ["localhost"]
    # The certificate is checked against the origin's name, through the tunnel too:
    # 127.0.0.1 is not in it.
    with pytest.raises(ConnectError) as raised:
        connect("wss://127.0.0.1:%d/" % port, proxy=proxy_url, ssl_context=client_context)
    assert type(raised.value) is ConnectError
    assert str(raised.value).startswith(
        "TLS handshake with wss://127.0.0.1:%d/ failed: [SSL: CERTIFICATE_VERIFY_FAILED] "
        "certificate verify failed: IP address mismatch, certificate is not valid for "
        "'127.0.0.1'." % port)


# -- SOCKS5 ------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["socks5h", "socks5"])
def test_socks5_proxy(microsocks, origin, scheme):
    port, _ = origin
    proxy = microsocks()
    with connect("ws://localhost:%d/through" % port,
                 proxy="%s://127.0.0.1:%d" % (scheme, proxy.port)) as ws:
        talk(ws, "localhost:%d" % port)


def test_socks5h_resolves_names_at_the_proxy(microsocks):
    """The name goes to the proxy as it is: its failure comes back as a SOCKS reply."""
    proxy = microsocks()
    with pytest.raises(ConnectError) as raised:
        connect("ws://wsocket-test.invalid/", proxy="socks5h://127.0.0.1:%d" % proxy.port)
    assert type(raised.value) is ConnectError
    assert str(raised.value) == (
        "SOCKS5 proxy socks5h://127.0.0.1:%d could not connect to wsocket-test.invalid:80: "
        "general SOCKS server failure (reply 1)" % proxy.port)
    # socks5:// resolves here, and says so.
    with pytest.raises(ConnectError) as raised:
        connect("ws://wsocket-test.invalid/", proxy="socks5://127.0.0.1:%d" % proxy.port)
    assert type(raised.value) is ConnectError
    assert str(raised.value).startswith(
        "cannot resolve wsocket-test.invalid (to connect through SOCKS5 proxy "
        "socks5://127.0.0.1:%d): [Errno " % proxy.port)


def test_socks5_reply_by_name(microsocks):
    proxy = microsocks()
    closed = free_port()
    with pytest.raises(ConnectError) as raised:
        connect("ws://127.0.0.1:%d/" % closed, proxy="socks5h://127.0.0.1:%d" % proxy.port)
    assert type(raised.value) is ConnectError
    assert str(raised.value) == (
        "SOCKS5 proxy socks5h://127.0.0.1:%d could not connect to 127.0.0.1:%d: "
        "connection refused (reply 5)" % (proxy.port, closed))


def test_socks5_with_username_and_password(microsocks, origin):
    port, _ = origin
    proxy = microsocks(auth=("bob", "pa ss"))
    with connect("ws://127.0.0.1:%d/through" % port,
                 proxy="socks5h://bob:pa%%20ss@127.0.0.1:%d" % proxy.port) as ws:
        talk(ws, "127.0.0.1:%d" % port)

    with pytest.raises(ConnectError) as raised:
        connect("ws://127.0.0.1:%d/" % port,
                proxy="socks5h://bob:wrong@127.0.0.1:%d" % proxy.port)
    assert type(raised.value) is ConnectError
    assert str(raised.value) == ("SOCKS5 proxy socks5h://127.0.0.1:%d rejected the username "
                                 "and password" % proxy.port)

    with pytest.raises(ConnectError) as raised:
        connect("ws://127.0.0.1:%d/" % port, proxy="socks5h://127.0.0.1:%d" % proxy.port)
    assert type(raised.value) is ConnectError
    assert str(raised.value) == ("SOCKS5 proxy socks5h://127.0.0.1:%d requires authentication: "
                                 "give user:password in the proxy URL" % proxy.port)


def test_wss_through_socks5(microsocks, tls_origin, certificate):
    port, _ = tls_origin
    proxy = microsocks()
    with connect("wss://127.0.0.1:%d/through" % port,
                 proxy="socks5://127.0.0.1:%d" % proxy.port,
                 ssl_context=certificate["context"]) as ws:
        assert isinstance(ws.sock, ssl.SSLSocket)
        talk(ws, "127.0.0.1:%d" % port)


def test_not_a_socks5_proxy(tinyproxy):
    """An HTTP proxy spoken to as SOCKS5 waits for a request line: a clear error, not a hang."""
    proxy = tinyproxy([])
    with pytest.raises(ConnectError) as raised:
        connect("ws://127.0.0.1:1/", proxy="socks5h://127.0.0.1:%d" % proxy.port, open_timeout=1)
    assert type(raised.value) is ConnectError
    assert str(raised.value) == ("timed out waiting for SOCKS5 proxy socks5h://127.0.0.1:%d"
                                 % proxy.port)


def test_socks5_proxy_that_answers_with_something_else():
    """A server that is no SOCKS5 proxy at all (here: one writing HTTP at once)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer():
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            connection.recv(100)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConnectError) as raised:
            connect("ws://127.0.0.1:1/", proxy="socks5h://127.0.0.1:%d" % port)
        assert type(raised.value) is ConnectError
        assert str(raised.value) == ("SOCKS5 proxy socks5h://127.0.0.1:%d did not answer as a "
                                     "SOCKS5 proxy" % port)
    finally:
        listener.close()
        thread.join(5)


# -- proxies from the environment ----------------------------------------------------------

def test_https_proxy_for_wss_and_all_proxy(monkeypatch, tinyproxy, microsocks, tls_origin,
                                           certificate):
    port, _ = tls_origin
    http_proxy = tinyproxy([port])
    monkeypatch.setenv("HTTPS_PROXY", http_proxy.url)
    monkeypatch.setenv("ALL_PROXY", "socks5h://127.0.0.1:1")  # used only when nothing else is
    with connect("wss://localhost:%d/through" % port, ssl_context=certificate["context"]) as ws:
        talk(ws, "localhost:%d" % port)
    assert connects_seen(http_proxy) == ["CONNECT localhost:%d HTTP/1.1" % port]

    socks = microsocks()
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("ALL_PROXY", "socks5h://127.0.0.1:%d" % socks.port)
    with connect("wss://localhost:%d/through" % port, ssl_context=certificate["context"]) as ws:
        talk(ws, "localhost:%d" % port)
    assert len(connects_seen(http_proxy)) == 1


def test_http_proxy_for_ws_no_proxy_and_proxy_none(monkeypatch, tinyproxy, origin):
    port, _ = origin
    proxy = tinyproxy([port])
    monkeypatch.setenv("http_proxy", proxy.url)
    with connect("ws://127.0.0.1:%d/through" % port) as ws:
        talk(ws, "127.0.0.1:%d" % port)
    assert len(connects_seen(proxy)) == 1

    # A proxy that is not there: proxy=None and NO_PROXY both go around it.
    dead = free_port()
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:%d" % dead)
    with pytest.raises(ConnectError) as raised:
        connect("ws://127.0.0.1:%d/through" % port)
    assert str(raised.value) == ("cannot connect to HTTP proxy http://127.0.0.1:%d: "
                                 "[Errno 111] Connection refused" % dead)
    with connect("ws://127.0.0.1:%d/through" % port, proxy=None) as ws:
        talk(ws, "127.0.0.1:%d" % port)
    monkeypatch.setenv("NO_PROXY", "example.test, 127.0.0.1")
    with connect("ws://127.0.0.1:%d/through" % port) as ws:
        talk(ws, "127.0.0.1:%d" % port)
    # An explicit proxy is used even for a host in NO_PROXY.
    with connect("ws://127.0.0.1:%d/through" % port, proxy=proxy.url) as ws:
        talk(ws, "127.0.0.1:%d" % port)
    assert len(connects_seen(proxy)) == 2


@pytest.mark.parametrize("environment, secure, expected", [
    ({}, False, None),
    ({"http_proxy": "http://h:1"}, False, "http://h:1"),
    ({"http_proxy": "http://h:1"}, True, None),  # wss:// never takes the http_proxy
    ({"HTTPS_PROXY": "http://s:2"}, True, "http://s:2"),
    # ws:// prefers the HTTPS proxy (RFC 6455 4.1, as websockets does)
    ({"http_proxy": "http://h:1", "https_proxy": "http://s:2"}, False, "http://s:2"),
    ({"https_proxy": "http://s:2", "socks_proxy": "k:3"}, True, "socks5h://k:3"),
    ({"https_proxy": "http://s:2", "socks_proxy": "socks5://k:3"}, True, "socks5://k:3"),
    ({"https_proxy": "http://s:2", "wss_proxy": "http://w:4"}, True, "http://w:4"),
    ({"http_proxy": "http://h:1", "ws_proxy": "socks5h://w:4"}, False, "socks5h://w:4"),
    ({"ws_proxy": "http://w:4"}, True, None),
    ({"ALL_PROXY": "socks5h://a:5"}, True, "socks5h://a:5"),
    ({"ALL_PROXY": "socks5h://a:5", "http_proxy": "http://h:1"}, False, "http://h:1"),
    # lower case wins over upper case
    ({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"}, True, "http://lower:2"),
    ({"https_proxy": "http://s:2", "no_proxy": "*"}, True, None),
    ({"https_proxy": "http://s:2", "NO_PROXY": ".example.test"}, True, None),
    ({"https_proxy": "http://s:2", "no_proxy": "other.test"}, True, "http://s:2"),
])
def test_proxy_precedence_in_the_environment(monkeypatch, environment, secure, expected):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert proxy_from_environment("ws.example.test", 8080, secure) == expected


def test_http_proxy_is_ignored_in_a_cgi_script(monkeypatch):
    """urllib's guard against "httpoxy": a request's Proxy header becomes HTTP_PROXY in CGI."""
    monkeypatch.setenv("REQUEST_METHOD", "GET")
    monkeypatch.setenv("HTTP_PROXY", "http://attacker:1")
    assert proxy_from_environment("ws.example.test", 80, False) is None


# -- bad proxy URLs -----------------------------------------------------------------------

@pytest.mark.parametrize("url, message", [
    ("socks4://user:secret@h:1", "unsupported proxy socks4://h:1: the scheme must be one of "
                                 "http://, socks5://, socks5h://"),
    ("https://h:1", "unsupported proxy https://h:1: the scheme must be one of http://, "
                    "socks5://, socks5h://"),
    ("http://", "no host in proxy URL http://"),
    ("http://h:1/path", "proxy URL http://h:1 has a path, query or fragment: a proxy URL is "
                        "scheme://[user:password@]host:port"),
    ("http://h:99999", "invalid port in proxy URL http://h:99999"),
    ("socks5://" + "u" * 256 + ":p@h", "SOCKS5 username must be 1 to 255 bytes "
                                       "(proxy socks5://h:1080)"),
])
def test_bad_proxy_urls(url, message):
    with pytest.raises(ValueError) as raised:
        connect("ws://127.0.0.1:1/", proxy=url)
    assert type(raised.value) is ValueError
    assert str(raised.value) == message
    assert "secret" not in str(raised.value)


def test_proxy_argument_of_a_wrong_type():
    with pytest.raises(ValueError) as raised:
        connect("ws://127.0.0.1:1/", proxy=8080)
    assert str(raised.value) == ("proxy must be a proxy URL, True (from the environment) or "
                                 "None, not 8080")


def test_proxy_url_forms():
    proxy = Proxy("proxy.example.test:3128")  # as proxy variables are often written
    assert (proxy.scheme, proxy.host, proxy.port, proxy.username) == (
        "http", "proxy.example.test", 3128, None)
    proxy = Proxy("socks5h://u%40x:p%3Aw@[::1]")
    assert (proxy.scheme, proxy.host, proxy.port, proxy.username, proxy.password) == (
        "socks5h", "::1", 1080, "u@x", "p:w")
    assert str(proxy) == "socks5h://[::1]:1080"
    assert Proxy("http://h").port == 80


# -- the terminal client ---------------------------------------------------------------------

def test_terminal_client_through_a_proxy(tinyproxy, origin):
    port, _ = origin
    proxy = tinyproxy([port])
    result = subprocess.run(
        [sys.executable, "-m", "wsocket.client", "ws://127.0.0.1:%d/through" % port,
         "--proxy", proxy.url], input="hello\n", capture_output=True, text=True, timeout=60,
        cwd=ROOT, env=dict(os.environ, http_proxy="http://127.0.0.1:1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        json.dumps({"host": "127.0.0.1:%d" % port, "path": "/through"}), "hello"]
    assert connects_seen(proxy) == ["CONNECT 127.0.0.1:%d HTTP/1.1" % port]


def test_terminal_client_without_proxy(origin):
    """--proxy none connects directly although the environment names a proxy."""
    port, _ = origin
    result = subprocess.run(
        [sys.executable, "-m", "wsocket.client", "ws://127.0.0.1:%d/through" % port,
         "--proxy", "none"], input="", capture_output=True, text=True, timeout=60,
        cwd=ROOT, env=dict(os.environ, http_proxy="http://127.0.0.1:1"))
    assert result.returncode == 0, result.stderr


def test_terminal_client_proxy_refuses(tinyproxy, origin):
    port, _ = origin
    proxy = tinyproxy([443])
    result = subprocess.run(
        [sys.executable, "-m", "wsocket", "connect", "ws://127.0.0.1:%d/" % port,
         "--proxy", proxy.url], input="", capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr == ("wsocket connect: error: HTTP proxy http://127.0.0.1:%d refused to "
                             "open a tunnel to 127.0.0.1:%d: 403 Access violation\n"
                             % (proxy.port, port))



@pytest.fixture
def ipv6_echo():
    """A websockets echo server on [::1]."""
    def handler(connection):
        for message in connection:
            connection.send(message)

    listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    port = listener.getsockname()[1]
    with websockets_serve(handler, sock=listener) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield port
        finally:
            server.shutdown()
            thread.join(5)


@pytest.mark.parametrize("kind", ["http", "socks5h"])
def test_ipv6_origin_through_a_proxy(kind, ipv6_echo, tinyproxy, microsocks):
    proxy = tinyproxy([ipv6_echo]) if kind == "http" else microsocks()
    with connect("ws://[::1]:%d/" % ipv6_echo,
                 proxy="%s://127.0.0.1:%d" % (kind, proxy.port)) as ws:
        ws.send("six")
        assert ws.receive(timeout=10) == "six"
    if kind == "http":
        assert connects_seen(proxy) == ["CONNECT [::1]:%d HTTP/1.1" % ipv6_echo]


def test_reconnecting_through_a_proxy_while_the_origin_is_down(tinyproxy):
    """The proxy's 500 (it cannot reach the origin) is worth another try; a 403 is not."""
    port = free_port()
    proxy = tinyproxy([port])
    connections = connect("ws://127.0.0.1:%d/" % port, proxy=proxy.url, reconnect=True,
                          backoff_initial=0.05, backoff_max=0.4, backoff_jitter=0)
    origin = {}

    def start_origin():
        # Up once the client has failed twice through the proxy (or after 30 s anyway).
        deadline = time.monotonic() + 30
        while connections.attempts < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        listener = socket.create_server(("127.0.0.1", port))
        origin["server"] = websockets_serve(lambda connection: connection.send("up"),
                                            sock=listener)
        origin["server"].serve_forever()

    thread = threading.Thread(target=start_origin, daemon=True)
    thread.start()
    try:
        with next(connections) as ws:
            assert ws.receive(timeout=10) == "up"
        assert len(connections.delays) >= 2
        assert connections.attempts == len(connections.delays) + 1
    finally:
        wait_for(lambda: "server" in origin, timeout=60, what="the origin")
        origin["server"].shutdown()
        thread.join(10)

    refusing = tinyproxy([443])
    connections = connect("ws://127.0.0.1:%d/" % port, proxy=refusing.url, reconnect=True)
    with pytest.raises(ConnectError) as raised:
        next(connections)
    assert str(raised.value) == ("HTTP proxy http://127.0.0.1:%d refused to open a tunnel to "
                                 "127.0.0.1:%d: 403 Access violation" % (refusing.port, port))
    assert (connections.attempts, connections.delays) == (1, [])
