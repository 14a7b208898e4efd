"""WSGI apps the tests serve, as ``tests.apps:NAME`` on the command line."""

import time

from wsocket import WSocketApp


def echo(environ, start_response):
    """Echo every WebSocket message exactly; plain HTTP gets a short text."""
    websocket = environ.get("wsgi.websocket")
    if websocket is None:
        body = ("plain HTTP %s %s" % (environ["REQUEST_METHOD"], environ["PATH_INFO"])).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    for message in websocket:
        websocket.send(message)
    return []


# The same echo with a size limit fit for the Autobahn Testsuite's 16 MiB cases.
echo_unlimited = WSocketApp(echo, max_message_size=16 * 1024 * 1024 + 1024)

# Subprotocols in the server's order of preference.
echo_chat = WSocketApp(echo, protocols=["superchat", "chat"])


# The event app echoing every message exactly (on wsocket's own server its idle
# connections hold no thread).
events_echo = WSocketApp()
events_echo.onmessage = lambda message, client: client.send(message)
# The same with Autobahn's limits (messages up to 16 MiB).
events_echo_unlimited = WSocketApp(max_message_size=16 * 1024 * 1024 + 1024)
events_echo_unlimited.onmessage = lambda message, client: client.send(message)


# -- for the command line tests ---------------------------------------------------

not_callable = 42


def create_app():
    """A factory: ``tests.apps:create_app()``."""
    return echo


def broken_factory():
    raise RuntimeError("factory broke")


# -- WebSocket apps with a particular ending ---------------------------------------

def fail_on_boom(environ, start_response):
    """Echoes, but raises on the message "boom": that client must get 1011."""
    websocket = environ.get("wsgi.websocket")
    if websocket is None:
        return echo(environ, start_response)
    for message in websocket:
        if message == "boom":
            raise RuntimeError("the app broke after the upgrade")
        websocket.send(message)
    return []


def say_bye(environ, start_response):
    """Sends one message and returns without closing: the middleware closes with 1000."""
    environ["wsgi.websocket"].send("bye")
    return []


def describe(environ, start_response):
    """Sends what the server negotiated, then echoes like ``echo``."""
    websocket = environ.get("wsgi.websocket")
    if websocket is None:
        return echo(environ, start_response)
    websocket.send("protocol=%s compress=%s version=%s origin=%s path=%s" % (
        websocket.protocol, websocket.do_compress, websocket.version, websocket.origin,
        websocket.path))
    for message in websocket:
        websocket.send(message)
    return []


# -- plain HTTP -------------------------------------------------------------------

def http(environ, start_response):
    """Plain WSGI: /body echoes the request body, /stream answers without a length."""
    path = environ["PATH_INFO"]
    if path == "/body":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/lines":
        lines = list(environ["wsgi.input"])
        body = repr(lines).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (part for part in [b"first,", b"second,", b"third"])
    if path == "/slow":
        time.sleep(1.5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow but complete"]
    if path == "/fail":
        raise RuntimeError("the plain app broke")
    return echo(environ, start_response)
