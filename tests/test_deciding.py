"""Deciding before the 101: accept(), refusals, the event app's onrequest, the hub, TestClient.

Everything here runs through ``wsocket.testing.TestClient``: the app in this
process, a real socket pair, a real handshake, wsocket's own server code.
The same behaviour on the other servers is in ``test_servers.py``.
"""

import importlib
import logging
import sys
import threading
import time

import pytest

from tests.netutil import ROOT, wsocket_records
from wsocket import ConnectionClosed, InvalidStatus, Response, WSocketApp
from wsocket.testing import TestClient

TIMEOUT = 10.0


@pytest.fixture
def log():
    """Every record of the ``wsocket`` logger (DEBUG and up) while the test runs."""
    logger = logging.getLogger("wsocket")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with wsocket_records(logging.DEBUG) as records:
            yield records
    finally:
        logger.setLevel(level)


def messages(records, level=logging.WARNING):
    return [record.getMessage() for record in records if record.levelno >= level]


def wait_for(condition, what):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.01)


def echo_all(websocket):
    for message in websocket:
        websocket.send(message)


# -- a plain WSGI app decides ----------------------------------------------------------------

def token_app(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    if websocket is None:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a page"]
    if environ.get("QUERY_STRING") != "token=good":
        start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer"),
                                            ("Content-Type", "text/plain")])
        return [b"no entry"]
    echo_all(websocket)
    return []


def test_a_refusal_reaches_the_client_with_status_headers_and_body(log):
    with TestClient(token_app) as client:
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/ws?token=bad")
        assert refused.value.status == 401
        assert ("WWW-Authenticate", "Bearer") in refused.value.headers
        assert refused.value.body == b"no entry"
        assert "401" in str(refused.value)
        with client.websocket("/ws?token=good") as websocket:
            websocket.send("in")
            assert websocket.receive() == "in"
        page = client.get("/")
        assert (page.status, page.body, page.header("content-type")) == (
            200, b"a page", "text/plain")
    assert not messages(log), "a refusal is no warning"
    assert any("answered 401 Unauthorized" in text for text in messages(log, logging.INFO))


def test_an_app_that_returns_without_a_word_still_gives_101_then_1000():
    """The original API: an app that does nothing with the WebSocket ends it normally."""
    with TestClient(lambda environ, start_response: []) as client:
        with client.websocket("/") as websocket:
            with pytest.raises(ConnectionClosed) as closed:
                websocket.receive()
            assert closed.value.code == 1000


# -- accept() --------------------------------------------------------------------------------

def test_accept_chooses_any_offered_subprotocol_and_adds_headers():
    def app(environ, start_response):
        websocket = environ["wsgi.websocket"]
        assert websocket.protocol == "superchat"  # the server's choice, until accept()
        websocket.accept(protocol="chat", headers={"Set-Cookie": "session=1; HttpOnly"})
        websocket.send(websocket.protocol)
        return []

    with TestClient(app, protocols=["superchat", "chat"]) as client:
        with client.websocket("/", protocols=["chat", "superchat"]) as websocket:
            assert websocket.protocol == "chat"
            assert websocket.receive() == "chat"


@pytest.mark.parametrize("name", ["Upgrade", "connection", "Sec-WebSocket-Accept",
                                  "sec-websocket-protocol", "Sec-WebSocket-Extensions"])
def test_accept_refuses_the_handshakes_own_headers(name):
    errors = []

    def app(environ, start_response):
        try:
            environ["wsgi.websocket"].accept(headers=[(name, "x")])
        except ValueError as error:
            errors.append(str(error))
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"refused"]

    with TestClient(app) as client:
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/")
        assert refused.value.status == 400  # the app could still answer as it liked
    assert len(errors) == 1 and name in errors[0]


@pytest.mark.parametrize("headers", [[("X-A", "a\r\nSet-Cookie: pwn=1")], [("X A", "1")],
                                     [("X-A", "nul\0")]])
def test_accept_refuses_headers_that_would_split_the_response(headers):
    errors = []

    def app(environ, start_response):
        try:
            environ["wsgi.websocket"].accept(headers=headers)
        except ValueError as error:
            errors.append(error)
        return []  # then accepted without them, and closed

    with TestClient(app) as client:
        with client.websocket("/") as websocket:
            with pytest.raises(ConnectionClosed):
                websocket.receive()
    assert len(errors) == 1


def test_accept_refuses_a_subprotocol_the_client_did_not_offer():
    errors = []

    def app(environ, start_response):
        try:
            environ["wsgi.websocket"].accept(protocol="other")
        except ValueError as error:
            errors.append(str(error))
        return []

    with TestClient(app) as client:
        with client.websocket("/", protocols=["chat"]):
            pass
    assert errors == ["subprotocol 'other' was not offered by the client (it offered: chat)"]


def test_accept_twice_after_close_or_after_an_http_answer_is_a_clear_error():
    seen = {}
    done = threading.Event()

    def app(environ, start_response):
        websocket = environ["wsgi.websocket"]
        if environ["PATH_INFO"] == "/twice":
            websocket.accept()
            with pytest.raises(RuntimeError, match="accept\\(\\) called"):
                websocket.accept()
            websocket.close()
            with pytest.raises(RuntimeError, match="closed already"):
                websocket.accept()
            seen["twice"] = True
            return []
        write = start_response("403 Forbidden", [("Content-Type", "text/plain")])
        write(b"started")  # the HTTP answer is going out
        with pytest.raises(RuntimeError, match="too late to accept"):
            websocket.accept()
        with pytest.raises(RuntimeError, match="too late to accept"):
            websocket.send("nothing")
        seen["late"] = True
        done.set()
        return [b" and ended"]

    with TestClient(app) as client:
        with client.websocket("/twice") as websocket:
            with pytest.raises(ConnectionClosed):
                websocket.receive()
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/late")
        assert refused.value.status == 403
        assert refused.value.body == b"started and ended"
    assert seen == {"twice": True, "late": True}


def test_an_exception_before_accepting_is_a_500_and_after_it_a_1011(log):
    def app(environ, start_response):
        websocket = environ["wsgi.websocket"]
        if environ["PATH_INFO"] == "/after":
            websocket.send("accepted")
        raise RuntimeError("the app broke")

    with TestClient(app) as client:
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/before")
        assert refused.value.status == 500
        with client.websocket("/after") as websocket:
            assert websocket.receive() == "accepted"
            with pytest.raises(ConnectionClosed) as closed:
                websocket.receive()
            assert closed.value.code == 1011


# -- routes of WSocketApp() ----------------------------------------------------------------

def test_a_route_refuses_with_its_own_status_before_using_the_websocket():
    app = WSocketApp()

    @app.route("/private")
    def private(environ, start_response):
        websocket = environ.get("wsgi.websocket")
        if "HTTP_AUTHORIZATION" not in environ:
            return Response("who are you?", 401, {"WWW-Authenticate": "Basic"})
        echo_all(websocket)

    with TestClient(app) as client:
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/private")
        assert (refused.value.status, refused.value.body) == (401, b"who are you?")
        assert ("WWW-Authenticate", "Basic") in refused.value.headers
        with client.websocket("/private", headers={"Authorization": "Basic eDp5"}) as websocket:
            websocket.send("hello")
            assert websocket.receive() == "hello"
        with pytest.raises(InvalidStatus) as missing:
            client.websocket("/elsewhere")
        assert missing.value.status == 404


# -- the event app's onrequest ------------------------------------------------------------------

def event_app():
    app = WSocketApp(protocols=["json", "text"])
    calls = []

    @app.onrequest
    def check(client):
        calls.append(("request", client.path, client.accepted))
        token = client.environ.get("QUERY_STRING", "")
        if token == "token=false":
            return False
        if token == "token=int":
            return 429
        if token == "token=broken":
            raise RuntimeError("the hook broke")
        if token != "token=good":
            return Response("bad token", 401, {"WWW-Authenticate": "Bearer"})
        client.data["user"] = "alice"
        client.accept(protocol="text", headers=[("Set-Cookie", "seen=1")])
        return None

    app.onconnect += lambda client: calls.append(("connect", client.data["user"]))
    app.onmessage += lambda message, client: client.send("%s: %s" % (client.data["user"],
                                                                     message))
    app.onclose += lambda reason, client: calls.append(("close", client.data["user"]))
    return app, calls


def test_onrequest_refuses_with_a_response_a_status_or_false(log):
    app, calls = event_app()
    with TestClient(app) as client:
        for query, status, body in (("token=bad", 401, b"bad token"),
                                    ("token=false", 403, b"403 Forbidden\n"),
                                    ("token=int", 429, b"429 Too Many Requests\n")):
            with pytest.raises(InvalidStatus) as refused:
                client.websocket("/ws?" + query)
            assert (refused.value.status, refused.value.body) == (status, body)
        assert app.clients == [] and app.hub.clients() == []
    assert calls == [("request", "/ws", False)] * 3  # no onconnect, no onclose
    assert not messages(log, logging.ERROR)


def test_onrequest_accepts_with_a_subprotocol_headers_and_data_for_the_handlers():
    app, calls = event_app()
    with TestClient(app) as client:
        with client.websocket("/ws?token=good", protocols=["json", "text"]) as websocket:
            assert websocket.protocol == "text"
            websocket.send("hi")
            assert websocket.receive() == "alice: hi"
            assert len(app.clients) == 1
        wait_for(lambda: ("close", "alice") in calls, "onclose")
    assert calls == [("request", "/ws", False), ("connect", "alice"), ("close", "alice")]


def test_an_exception_in_onrequest_is_a_500_with_the_traceback_logged(log):
    app, calls = event_app()
    with TestClient(app) as client:
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/ws?token=broken")
        assert refused.value.status == 500
        assert b"the hook broke" not in refused.value.body  # only with debug=True
    [error] = [record for record in log if record.levelno >= logging.ERROR]
    assert "error in onrequest" in error.getMessage()
    assert "RuntimeError: the hook broke" in error.getMessage()


def test_onrequest_is_set_by_assignment_too_and_none_removes_it():
    app = WSocketApp()
    app.onmessage = lambda message, client: client.send(message)
    app.onrequest = lambda client: 403
    assert app.onrequest.handler is not None
    with TestClient(app) as client:
        with pytest.raises(InvalidStatus):
            client.websocket("/")
        app.onrequest = None
        with client.websocket("/") as websocket:
            websocket.send("open")
            assert websocket.receive() == "open"
    with pytest.raises(TypeError):
        app.onrequest = "not callable"


# -- the hub -------------------------------------------------------------------------------------

def test_the_hub_counts_a_client_only_once_accepted():
    app = WSocketApp()
    before = {}
    go_on = threading.Event()

    @app.route("/room")
    def room(environ, start_response):
        websocket = environ["wsgi.websocket"]
        hub = environ["wsocket.hub"]
        hub.join(websocket, "room")  # takes effect with the 101
        before["clients"] = len(hub.clients())
        before["reached"] = hub.broadcast("before the 101")
        go_on.wait(TIMEOUT)
        websocket.accept()
        hub.broadcast("after the 101", room="room")
        echo_all(websocket)

    with TestClient(app) as client:
        opened = []
        thread = threading.Thread(target=lambda: opened.append(client.websocket("/room")))
        thread.start()
        wait_for(lambda: "reached" in before, "the route")
        go_on.set()
        thread.join(TIMEOUT)
        with opened[0] as websocket:
            assert websocket.receive() == "after the 101"
        assert before == {"clients": 0, "reached": 0}


# -- real frameworks through the test client ----------------------------------------------------

def test_the_test_client_runs_a_flask_app_with_a_session_cookie():
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)
    app.secret_key = "test only"
    app.wsgi_app = WSocketApp(app.wsgi_app)

    @app.route("/login")
    def login():
        flask.session["user"] = "alice"
        return "logged in"

    @app.route("/ws", websocket=True)
    def ws():
        user = flask.session.get("user")
        if user is None:
            return "log in first", 401
        websocket = flask.request.environ["wsgi.websocket"]
        for message in websocket:
            websocket.send("%s: %s" % (user, message))
        return ""

    @app.route("/forgot")
    def forgot():
        return "no websocket=True here"

    with TestClient(app) as client:
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/ws")
        assert (refused.value.status, refused.value.body) == (401, b"log in first")
        cookie = client.get("/login").header("Set-Cookie").split(";")[0]
        with client.websocket("/ws", headers={"Cookie": cookie}) as websocket:
            websocket.send("hello")
            assert websocket.receive() == "alice: hello"
        for path, status in (("/forgot", 400), ("/missing", 404)):
            with pytest.raises(InvalidStatus) as refused:
                client.websocket(path)
            assert refused.value.status == status


def test_the_test_client_runs_a_django_app(monkeypatch):
    pytest.importorskip("django")
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "django_echo"))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "echosite.settings")
    from echosite.wsgi import application

    with TestClient(application, host="localhost") as client:
        page = client.get("/")
        assert page.status == 200 and page.body.startswith(b"Django here")
        with client.websocket("/ws") as websocket:
            websocket.send("through django")
            assert websocket.receive() == "through django"
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/nowhere")
        assert refused.value.status == 404
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/")  # a view that answers with a page, not the WebSocket
        assert refused.value.status == 200 and refused.value.body.startswith(b"Django here")


# -- the authentication examples (docs/security.md) ----------------------------------------------------------

def example(name, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_the_flask_session_example(monkeypatch):
    pytest.importorskip("flask")
    app = example("auth_flask", monkeypatch).app
    origin = "http://127.0.0.1:5000"
    with TestClient(app, host="127.0.0.1:5000") as client:
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/ws", origin=origin)
        assert refused.value.status == 401
        cookie = client.get("/login").header("Set-Cookie").split(";")[0]
        with pytest.raises(InvalidStatus) as elsewhere:  # a cookie alone is not enough
            client.websocket("/ws", origin="https://evil.example", headers={"Cookie": cookie})
        assert elsewhere.value.status == 403
        with client.websocket("/ws", origin=origin, headers={"Cookie": cookie}) as websocket:
            websocket.send("hi")
            assert websocket.receive() == "alice: hi"


def test_the_token_example_in_the_query_or_a_subprotocol(monkeypatch):
    app = example("auth_token", monkeypatch).app
    with TestClient(app) as client:
        with pytest.raises(InvalidStatus) as refused:
            client.websocket("/ws?token=wrong")
        assert refused.value.status == 401
        assert ("WWW-Authenticate", "Bearer") in refused.value.headers
        with client.websocket("/ws?token=abc123") as websocket:
            assert websocket.protocol is None
            assert websocket.receive() == "hello alice"
        with client.websocket("/ws", protocols=["token.def456"]) as websocket:
            assert websocket.protocol == "token.def456"
            assert websocket.receive() == "hello bob"
            websocket.send("hi")
            assert websocket.receive() == "bob: hi"
