"""Routes: a plain WSGI function per path, on wsocket's own server.

    python routes.py [PORT]    # http://127.0.0.1:8080/ (0: any free port)

Every route is ``handler(environ, start_response)``; ``start_response`` is
forgiving (no arguments, an int, a dict of headers) and a route may return
a str, bytes, a file, a list or a generator (streamed as it yields).
"""

import sys
import time

from wsocket import WSocketApp, run

app = WSocketApp()


@app.route("/")
def index(environ, start_response):
    start_response()  # 200 OK, text/html
    return [
        "<!doctype html><title>routes</title><h1>wsocket routes</h1><ul>",
        '<li><a href="/hello/Ada">/hello/Ada</a>: a prefix route</li>',
        '<li><a href="/countdown">/countdown</a>: a generator, streamed</li>',
        "<li>ws://&lt;host&gt;/echo: a WebSocket route</li></ul>",
    ]


@app.route("/hello/*")
def hello(environ, start_response):
    # WSGI gives the path as latin-1 characters of its UTF-8 bytes.
    path = environ["PATH_INFO"].encode("latin-1").decode("utf-8", "replace")
    name = path[len("/hello/"):] or "world"
    start_response(200, {"Content-Type": "text/plain; charset=utf-8"})
    return "Hello, %s!" % name


@app.route("/countdown")
def countdown(environ, start_response):
    start_response(200, {"Content-Type": "text/plain"})
    for number in (3, 2, 1):
        yield "%d...\n" % number  # the browser sees each line as it comes
        time.sleep(0.2)
    yield "liftoff!\n"


@app.route("/echo")
def echo(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    if websocket is None:
        start_response(400, {"Content-Type": "text/plain"})
        return "connect a WebSocket here: ws://host/echo\n"
    for message in websocket:  # ends when the client closes
        websocket.send(message)


if __name__ == "__main__":
    run(app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080)
