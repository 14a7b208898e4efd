"""The app every server of the test matrix serves (``tests.matrix_app:app``).

``/`` echoes; ``/describe`` first sends what was negotiated, then echoes;
``/close`` sends one message, then closes with code 4001 and a reason; any
request without an upgrade gets a short plain-text page. Deciding before the
101: ``/auth`` answers 401 (``WWW-Authenticate`` and a body) unless the query
holds ``token=good``, then echoes; ``/accept`` accepts with the subprotocol
``chat`` (not the server's first choice) and a ``Set-Cookie``; ``/flask/...``
is a Flask app, ``/flask/ws`` its WebSocket route and ``/flask/forgot`` one
without ``websocket=True``; ``/events`` is an event app whose ``onrequest``
refuses with 403 unless the query holds ``token=good``, then greets its user.
"""

import logging
import os
import sys

from wsocket import Response, WSocketApp

CLOSE_CODE = 4001
CLOSE_REASON = "bye from the server"
MAX_MESSAGE_SIZE = 8 * 1024 * 1024


def _configure_logging():
    # Whatever wsocket logs reaches the server's stderr, where the tests look
    # for errors; every server below logs its own way, so give wsocket a handler.
    logger = logging.getLogger("wsocket")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s wsocket: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


AUTH_BODY = b"a token is needed: ?token=..."
SESSION_COOKIE = "session=s3cr3t; HttpOnly; Path=/"


def flask_app():
    from flask import Flask, request

    app = Flask(__name__)

    @app.route("/flask/ws", websocket=True)
    def flask_echo():
        websocket = request.environ["wsgi.websocket"]
        for message in websocket:
            websocket.send(message)
        return ""

    @app.route("/flask/forgot")  # no websocket=True: werkzeug's router answers 400
    def forgot():
        return "a page"

    return app


_flask = []

EVENTS_REFUSAL = b"events need a token"
events = WSocketApp()


@events.onrequest
def _check(client):
    if "token=good" not in client.environ.get("QUERY_STRING", ""):
        return Response(EVENTS_REFUSAL, 403, {"X-Refused-By": "onrequest"})
    client.data["user"] = "alice"
    return None


events.onconnect += lambda client: client.send("hello " + client.data["user"])
events.onmessage += lambda message, client: client.send(message)


def matrix(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    path = environ.get("PATH_INFO", "/")
    if path == "/events":
        return events(environ, start_response)
    if path.startswith("/flask/"):
        if not _flask:
            _flask.append(flask_app())
        return _flask[0].wsgi_app(environ, start_response)
    if path == "/auth" and "token=good" not in environ.get("QUERY_STRING", ""):
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Bearer realm="matrix"'),
                                            ("Content-Type", "text/plain"),
                                            ("Content-Length", str(len(AUTH_BODY)))])
        return [AUTH_BODY]
    if path == "/accept" and websocket is not None:
        websocket.accept(protocol="chat", headers=[("Set-Cookie", SESSION_COOKIE)])
    if websocket is None:
        body = ("plain HTTP %s %s" % (environ["REQUEST_METHOD"], path)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/describe":
        websocket.send("protocol=%s compress=%s" % (websocket.protocol, websocket.do_compress))
    elif path == "/close":
        websocket.send("closing")
        websocket.close(CLOSE_CODE, CLOSE_REASON)
        return []
    for message in websocket:
        websocket.send(message)
    return []


if os.environ.get("WSOCKET_TEST_SERVER"):  # set by tests.serverproc for its servers only
    _configure_logging()
app = WSocketApp(matrix, protocols=["superchat", "chat"], max_message_size=MAX_MESSAGE_SIZE)


def wrapped(environ, start_response):
    """``app`` behind a middleware that wraps ``start_response``, as many do."""
    def start(status, headers, exc_info=None):
        return start_response(status, headers, exc_info)
    return app(environ, start)


# For tests/test_uwsgi.py: origins checked, and pings every half second.
GOOD_ORIGIN = "https://good.example"
checked = WSocketApp(matrix, protocols=["chat"], allowed_origins=[GOOD_ORIGIN],
                     ping_interval=0.5, ping_timeout=2.0)


def late_takeover(environ, start_response):
    """Takes the connection over only after a while, as an app that decides late would.

    For tests/test_uwsgi.py: the adapter's take_over() at any point of the
    app's call; it writes a 101 and one frame by hand, then releases.
    """
    import base64
    import hashlib
    import time

    from wsocket.adapters import take_over
    time.sleep(0.2)
    environ["wsgi.input"].read(0)  # the app may have looked at the request meanwhile
    transport = take_over(environ, start_response)
    key = environ["HTTP_SEC_WEBSOCKET_KEY"].encode("ascii")
    accept = base64.b64encode(hashlib.sha1(
        key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode("ascii")
    transport.sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                            % accept).encode("ascii") + b"\x81\x04late")
    transport.release()
    return transport.response()
