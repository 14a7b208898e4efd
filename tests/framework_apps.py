"""Framework apps the tests serve as ``tests.framework_apps:NAME`` in a server subprocess.

``/report`` answers with what the process saw (files and generators
closed, the sizes file-like objects were asked for), as JSON, so a test
can check what happened inside the server.
"""

import io
import json
import threading
from urllib.parse import parse_qs

from wsocket import Response, WSocketApp

app = WSocketApp()

# What the routes saw, for /report.
report = {"read_sizes": [], "closed": [], "generator_steps": []}
_gates = {}
_gates_lock = threading.Lock()


def _query(environ):
    return {name: values[-1] for name, values in
            parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def _gate(name):
    with _gates_lock:
        return _gates.setdefault(name, threading.Event())


@app.route("/report")
def show_report(environ, start_response):
    start_response(200, {"Content-Type": "application/json"})
    return json.dumps(report)


# -- routing ------------------------------------------------------------------------

@app.route("/hello/world")
def hello_world(environ, start_response):
    start_response()
    return "exact /hello/world"


@app.route("/hello/*")
def hello_prefix(environ, start_response):
    start_response()
    return "prefix /hello/* got " + environ["PATH_INFO"]


@app.route("/hello/deeper/*")
def hello_deeper(environ, start_response):
    start_response()
    return "prefix /hello/deeper/* got " + environ["PATH_INFO"]


@app.route("/caf\u00e9")
def cafe(environ, start_response):
    start_response()
    return "caf\u00e9 route"


# -- start_response -----------------------------------------------------------------

@app.route("/status/*")
def status(environ, start_response):
    kind = environ["PATH_INFO"][len("/status/"):]
    if kind == "no-args":
        start_response()
    elif kind == "int":
        start_response(201)
    elif kind == "code-only":
        start_response("404")
    elif kind == "full":
        start_response("404 Not Found")
    elif kind == "own-phrase":
        start_response("404 Gone Fishing")
    elif kind == "unknown-code":
        start_response(299)
    elif kind == "twice":
        start_response(500)
        start_response(202, {"X-Second": "yes"})
    elif kind == "list-headers":
        start_response(200, [("X-One", "1"), ("X-Two", "2"), ("Content-Type", "text/plain")])
    elif kind == "dict-headers":
        start_response(200, {"X-One": 1, "X-Two": "2", "Content-Type": "text/plain"})
    elif kind == "not-called":
        pass
    elif kind == "bad":
        start_response("two hundred")
    return "status " + kind


@app.route("/nobody/*")
def no_body(environ, start_response):
    code = int(environ["PATH_INFO"][len("/nobody/"):])
    start_response(code, [("Content-Type", "text/plain"), ("Content-Length", "12"),
                          ("Transfer-Encoding", "chunked"), ("ETag", '"v1"')])
    return "never sent"


@app.route("/write")
def uses_write(environ, start_response):
    write = start_response(200, {"Content-Type": "text/plain"})
    write("written, ")
    return "then returned"


# -- return values --------------------------------------------------------------------

class Shown:
    def __str__(self):
        return "<Shown object>"


@app.route("/body/*")
def body(environ, start_response):
    kind = environ["PATH_INFO"][len("/body/"):]
    start_response(200, {"Content-Type": "text/plain; charset=utf-8"})
    values = {
        "str": "h\u00e9llo \u2713",
        "bytes": b"\x00\x01\xfe\xff",
        "bytearray": bytearray(b"array"),
        "list": ["text,", b"bytes,", 42, ",", 1.5, ",", None, Shown()],
        "tuple": ("a", b"b", 3),
        "set": {1, 2, 3},
        "dict": {"key1": "value1", "key2": "value2"},
        "dict-keys": {"k": 1, "j": 2}.keys(),
        "int": 1234,
        "float": 2.5,
        "object": Shown(),
        "none": None,
        "empty-list": [],
        "bool": True,
        "response": Response("made by Response", 410, {"X-From": "response"}),
    }
    return values[kind]


@app.route("/gen/mixed")
def gen_mixed(environ, start_response):
    start_response(200, {"Content-Type": "text/plain"})
    yield "one,"
    yield b"two,"
    yield ""
    yield 3
    yield None
    yield ",four"


@app.route("/gen/status")
def gen_status(environ, start_response):
    # start_response inside the generator: runs at its first step.
    start_response(203, {"X-Generated": "yes"})
    yield "from a generator"


@app.route("/gen/gated")
def gen_gated(environ, start_response):
    """Yields one chunk, then waits until /gen/open?id=... opens its gate."""
    gate = _gate(_query(environ)["id"])
    start_response(200, {"Content-Type": "text/plain"})
    yield "first chunk\n"
    if not gate.wait(30):
        yield "gate never opened\n"
        return
    yield "after the gate\n"


@app.route("/gen/open")
def gen_open(environ, start_response):
    _gate(_query(environ)["id"]).set()
    return "opened"


@app.route("/gen/tracked")
def gen_tracked(environ, start_response):
    name = _query(environ)["id"]
    start_response(200, {"Content-Type": "text/plain"})
    try:
        report["generator_steps"].append(name + ":1")
        yield "step 1,"
        report["generator_steps"].append(name + ":2")
        yield "step 2"
    finally:
        report["closed"].append("generator " + name)


@app.route("/gen/fails-early")
def gen_fails_early(environ, start_response):
    start_response(200)
    raise RuntimeError("generator failed before its first chunk")
    yield "never"


@app.route("/gen/fails-later")
def gen_fails_later(environ, start_response):
    start_response(200, {"Content-Type": "text/plain"})
    yield "partial"
    raise RuntimeError("generator failed in the middle")


@app.route("/file/text")
def text_file(environ, start_response):
    query = _query(environ)
    return open(query["path"], encoding=query.get("encoding", "utf-8"))


@app.route("/file/binary")
def binary_file(environ, start_response):
    return open(_query(environ)["path"], "rb")


@app.route("/file/bytesio")
def bytes_io(environ, start_response):
    start_response(200, {"Content-Type": "application/octet-stream"})
    return io.BytesIO(bytes(range(256)) * 1000)


@app.route("/file/stringio")
def string_io(environ, start_response):
    return io.StringIO("string io \u00e9")


class RecordingReader:
    """A file-like object that records how much it was asked to read."""

    def __init__(self, name, size):
        self.name = name
        self.left = size

    def read(self, size=-1):
        report["read_sizes"].append(size)
        if size is None or size < 0:
            size = self.left
        count = min(size, self.left)
        self.left -= count
        return b"r" * count

    def close(self):
        report["closed"].append("reader " + self.name)


@app.route("/file/recording")
def recording(environ, start_response):
    query = _query(environ)
    start_response(200, {"Content-Type": "application/octet-stream"})
    return RecordingReader(query["id"], int(query["size"]))


# -- errors ---------------------------------------------------------------------------

@app.route("/error")
def error(environ, start_response):
    raise ValueError("<boom> & bust")


@app.route("/error/after-start")
def error_after_start(environ, start_response):
    start_response(200, {"X-Lost": "yes"})
    raise KeyError("after start_response")


# -- WebSockets: a route, and events for the paths without one -------------------------

@app.route("/ws/route")
def websocket_route(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    if websocket is None:
        start_response()
        return "the WebSocket route, over plain HTTP"
    start_response()  # forgiving here too: the 101 already went out
    for message in websocket:
        websocket.send("route got: %s" % message)


@app.route("/ws/generator")
def websocket_generator(environ, start_response):
    websocket = environ["wsgi.websocket"]
    for message in websocket:
        websocket.send("generator route got: %s" % message)
        yield ""


app.onmessage += lambda message, client: client.send("event got: %s at %s" % (message,
                                                                               client.path))


# -- other apps -----------------------------------------------------------------------

routes_only = WSocketApp()


@routes_only.route("/only-here")
def only_here(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    if websocket is not None:
        websocket.send("only-here route")
        return []
    return "only here"


debug_app = WSocketApp(debug=True)


@debug_app.route("/error")
def debug_error(environ, start_response):
    raise ValueError("<boom> & bust")


custom_404 = WSocketApp()


@custom_404.route("/exists")
def exists(environ, start_response):
    return "exists"


def my_not_found(environ, start_response):
    start_response(404, {"Content-Type": "text/plain"})
    return "custom 404 for " + environ["PATH_INFO"]


custom_404.not_found = my_not_found


class TeapotApp(WSocketApp):
    def not_found(self, environ, start_response):
        start_response(418, [("Content-Type", "text/plain")])
        return ["no route, ", "a teapot"]


subclass_404 = TeapotApp()
