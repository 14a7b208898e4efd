"""wsocket.connect() following redirects, against the websockets library's server answering 30x.

Each site is a websockets server whose ``process_request`` answers the
paths listed in its ``redirects`` with that status and Location, and
accepts the others, sending the path and the request headers it got; so a
redirect can stay on one origin or go to another site.
"""

import json
import socket
import ssl
import threading

import pytest
from websockets.sync.server import serve as websockets_serve

from wsocket import InvalidStatus, connect


class Site:
    """``redirects[path] = (status, location)``; ``requests``: (path, headers) of each request."""

    def __init__(self):
        self.redirects = {}
        self.requests = []

    def process_request(self, connection, request):
        path = request.path.partition("?")[0]
        headers = {name.lower(): value for name, value in request.headers.raw_items()}
        self.requests.append((path, headers))
        if path not in self.redirects:
            return None  # accept
        status, location = self.redirects[path]
        response = connection.respond(status, "moved")
        if location is not None:
            response.headers["Location"] = location
        return response

    def handler(self, connection):
        path, headers = self.requests[-1]
        connection.send(json.dumps({"path": path, "headers": headers}))
        for message in connection:
            connection.send(message)


@pytest.fixture
def site():
    """Factory: ``site(ssl_context=None)`` -> (Site, base URL without a trailing slash)."""
    running = []

    def start(ssl_context=None):
        state = Site()
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        server = websockets_serve(state.handler, sock=listener, ssl=ssl_context,
                                  process_request=state.process_request)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return state, "%s://127.0.0.1:%d" % ("wss" if ssl_context else "ws", port)

    yield start
    for server, thread in running:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def tls(certificate):
    """A server context with the certificate fixture's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate["certfile"], certificate["keyfile"])
    return context


def hello(websocket):
    return json.loads(websocket.receive(timeout=10))


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_follows_each_redirect_status(site, status):
    app, base = site()
    app.redirects["/old"] = (status, base + "/new?x=1")
    with connect(base + "/old") as ws:
        assert hello(ws)["path"] == "/new"
        assert ws.path == "/new"
        ws.send("after the redirect")
        assert ws.receive(timeout=10) == "after the redirect"
    assert [path for path, _ in app.requests] == ["/old", "/new"]


def test_relative_and_http_locations(site):
    app, base = site()
    app.redirects["/a/start"] = (302, "next")  # relative to /a/start
    app.redirects["/a/next"] = (307, "/b")  # absolute path
    app.redirects["/b"] = (308, base.replace("ws://", "http://") + "/end")  # http:// means ws://
    with connect(base + "/a/start") as ws:
        assert hello(ws)["path"] == "/end"
    assert [path for path, _ in app.requests] == ["/a/start", "/a/next", "/b", "/end"]


def test_ws_to_wss_is_followed(site, tls, certificate):
    plain_app, plain = site()
    secure_app, secure = site(tls)
    plain_app.redirects["/"] = (301, secure + "/secure")
    with connect(plain + "/", ssl_context=certificate["context"]) as ws:
        assert hello(ws)["path"] == "/secure"
        assert ws.sock.version() is not None  # TLS
    assert [path for path, _ in secure_app.requests] == ["/secure"]


def test_wss_to_ws_is_refused(site, tls, certificate):
    plain_app, plain = site()
    secure_app, secure = site(tls)
    secure_app.redirects["/"] = (302, plain + "/insecure")
    with pytest.raises(InvalidStatus) as raised:
        connect(secure + "/", ssl_context=certificate["context"])
    error = raised.value
    assert type(error) is InvalidStatus
    assert str(error) == ("refused to follow the redirect from %s/ to %s/insecure: it would "
                          "drop TLS" % (secure, plain))
    assert (error.status, error.body) == (302, b"moved")
    assert ("location", plain + "/insecure") in error.headers
    assert plain_app.requests == []


def test_ten_redirects_are_followed_eleven_are_too_many(site):
    app, base = site()
    for hop in range(11):
        app.redirects["/hop/%d" % hop] = (302, "/hop/%d" % (hop + 1))
    app.redirects.pop("/hop/10")
    with connect(base + "/hop/0") as ws:
        assert hello(ws)["path"] == "/hop/10"

    app.redirects["/hop/10"] = (302, "/hop/11")
    with pytest.raises(InvalidStatus) as raised:
        connect(base + "/hop/0")
    assert type(raised.value) is InvalidStatus
    assert str(raised.value) == ("too many redirects (more than 10), the last from %s/hop/10 "
                                 "to %s/hop/11" % (base, base))
    assert raised.value.status == 302


def test_a_redirect_loop_ends(site):
    app, base = site()
    app.redirects["/ping"] = (307, "/pong")
    app.redirects["/pong"] = (307, "/ping")
    with pytest.raises(InvalidStatus) as raised:
        connect(base + "/ping", max_redirects=3)
    assert str(raised.value) == ("too many redirects (more than 3), the last from %s/pong to "
                                 "%s/ping" % (base, base))
    assert len(app.requests) == 4


def test_max_redirects_zero_does_not_follow(site):
    app, base = site()
    app.redirects["/old"] = (301, "/new")
    with pytest.raises(InvalidStatus) as raised:
        connect(base + "/old", max_redirects=0)
    assert type(raised.value) is InvalidStatus
    assert str(raised.value) == ("server at %s/old answered 301 instead of 101 Switching "
                                 "Protocols" % base)


@pytest.mark.parametrize("status", [300, 303, 304, 305])
def test_other_3xx_are_not_followed(site, status):
    app, base = site()
    app.redirects["/old"] = (status, "/new")
    with pytest.raises(InvalidStatus) as raised:
        connect(base + "/old")
    assert str(raised.value) == ("server at %s/old answered %d instead of 101 Switching "
                                 "Protocols" % (base, status))
    assert [path for path, _ in app.requests] == ["/old"]


def test_redirect_without_location(site):
    app, base = site()
    app.redirects["/old"] = (302, None)
    with pytest.raises(InvalidStatus) as raised:
        connect(base + "/old")
    assert type(raised.value) is InvalidStatus
    assert str(raised.value) == "server at %s/old answered 302 without a Location header" % base
    assert raised.value.status == 302


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/file", "mailto:someone@example.test",
                                      "ws://host:notaport/"])
def test_redirect_to_an_unusable_url(site, location):
    app, base = site()
    app.redirects["/old"] = (308, location)
    with pytest.raises(InvalidStatus) as raised:
        connect(base + "/old")
    assert type(raised.value) is InvalidStatus
    assert str(raised.value) == ("server at %s/old redirected to %r, which is not a ws://, "
                                 "wss://, http:// or https:// URL" % (base, location))


CREDENTIALS = [("Authorization", "Bearer token"), ("Cookie", "session=1"),
               ("Proxy-Authorization", "Basic eA=="), ("X-Trace", "kept")]


def test_credentials_stay_on_a_same_origin_redirect(site):
    app, base = site()
    app.redirects["/old"] = (302, "/new")
    with connect(base + "/old", headers=CREDENTIALS) as ws:
        headers = hello(ws)["headers"]
    for name, value in CREDENTIALS:
        assert headers[name.lower()] == value


def test_credentials_are_dropped_on_a_cross_origin_redirect(site):
    first_app, first = site()
    second_app, second = site()
    first_app.redirects["/old"] = (307, second + "/new")
    with connect(first + "/old", headers=CREDENTIALS) as ws:
        headers = hello(ws)["headers"]
    assert "authorization" not in headers
    assert "cookie" not in headers
    assert "proxy-authorization" not in headers
    assert headers["x-trace"] == "kept"
    # The first origin got them all.
    assert first_app.requests[0][1]["authorization"] == "Bearer token"


def test_same_host_other_port_and_localhost_are_other_origins(site):
    first_app, first = site()
    second_app, second = site()
    # localhost and 127.0.0.1 are different origins, even on the same port.
    first_app.redirects["/old"] = (302, first.replace("127.0.0.1", "localhost") + "/new")
    with connect(first + "/old", headers=CREDENTIALS) as ws:
        assert "cookie" not in hello(ws)["headers"]


def test_userinfo_credentials_follow_their_url(site):
    first_app, first = site()
    second_app, second = site()
    first_app.redirects["/same"] = (302, "/same-new")
    first_app.redirects["/cross"] = (302, second + "/cross-new")
    first_app.redirects["/cross-with-userinfo"] = (
        302, second.replace("ws://", "ws://carol:pw@") + "/mine")
    userinfo = first.replace("ws://", "ws://alice:secret@")
    with connect(userinfo + "/same") as ws:
        assert hello(ws)["headers"]["authorization"] == "Basic YWxpY2U6c2VjcmV0"
    with connect(userinfo + "/cross") as ws:
        assert "authorization" not in hello(ws)["headers"]
    with connect(userinfo + "/cross-with-userinfo") as ws:
        assert hello(ws)["headers"]["authorization"] == "Basic Y2Fyb2w6cHc="
