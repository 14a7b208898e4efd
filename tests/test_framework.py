"""The framework (SPEC "The framework") against a real ``python -m wsocket`` subprocess.

Requests are written and responses read by hand (tests.netutil), so the
tests see the exact status lines, headers and bodies on the wire. The apps
are in tests/framework_apps.py; ``/report`` tells what happened inside.
"""

import json
import os
import time
import uuid
import wsgiref.simple_server
import wsgiref.util

import pytest
from websockets.sync.client import connect

from tests.netutil import TIMEOUT, Reader, open_connection, request, upgrade_request, wait_for
from wsocket import Response, WSocketApp

# Written out here, not taken from the library: what a 500 page must be, byte for byte.
STYLE = (b"<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:3rem auto;"
         b"padding:0 1rem;color:#1f2328}h1{font-size:1.5rem}pre{background:#f6f8fa;"
         b"padding:1rem;overflow:auto;border-radius:6px;font-size:.85rem}</style>")
ERROR_PAGE = (b'<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8">'
              b"<title>500 Internal Server Error</title>\n" + STYLE + b"</head>\n<body>\n"
              b"<h1>500 Internal Server Error</h1>\n"
              b"<p>The server met an error while answering this request.</p>\n"
              b"</body>\n</html>\n")


def not_found_page(escaped_path):
    return (b'<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8">'
            b"<title>404 Not Found</title>\n" + STYLE + b"</head>\n<body>\n"
            b"<h1>404 Not Found</h1>\n<p>Nothing here at <code>" + escaped_path +
            b"</code>.</p>\n</body>\n</html>\n")


@pytest.fixture(scope="module")
def server(wsocket_process_module):
    return wsocket_process_module("tests.framework_apps:app", "--port", "0")


@pytest.fixture(scope="module")
def debug_server(wsocket_process_module):
    return wsocket_process_module("tests.framework_apps:debug_app", "--port", "0")


@pytest.fixture
def conn(server):
    sock = open_connection(server.host, server.port)
    yield sock, Reader(sock)
    sock.close()


def fetch(server, path, method="GET", headers=()):
    """One request on a new connection; the response as the server sent it."""
    sock = open_connection(server.host, server.port)
    try:
        sock.sendall(request(method, path, headers))
        return Reader(sock).read_response(method)
    finally:
        sock.close()


def own_headers(response):
    """The headers the app made: all but Date and Server, which the server adds."""
    return [(name, value) for name, value in response.headers
            if name.lower() not in ("date", "server")]


def report(server):
    return json.loads(fetch(server, "/report").body)



def open_paths(pid):
    """The files a process has open, from /proc."""
    paths = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            paths.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass  # closed while we looked
    return paths


def assert_closed_in_server(server, path):
    wait_for(lambda: str(path) not in open_paths(server.proc.pid),
             what="the server to close %s" % path)


def read_chunk(reader):
    """One chunk of a chunked body as it arrives; b"" for the last one."""
    size = int(reader.read_until(b"\r\n")[:-2], 16)
    if size == 0:
        assert reader.read_until(b"\r\n") == b"\r\n"
        return b""
    data = reader.read_exact(size)
    assert reader.read_exact(2) == b"\r\n"
    return data


# -- routes ------------------------------------------------------------------------------

def test_exact_route(server):
    response = fetch(server, "/hello/world")
    assert response.status_line == "HTTP/1.1 200 OK"
    assert own_headers(response) == [("Content-Type", "text/html; charset=utf-8"),
                                     ("Content-Length", "18")]
    assert response.body == b"exact /hello/world"


def test_only_the_path_is_matched_never_the_query(server):
    assert fetch(server, "/hello/world?page=/hello/deeper/x&q=1").body == b"exact /hello/world"
    assert fetch(server, "/nothing?/hello/world").status == 404


@pytest.mark.parametrize("path, body", [
    ("/hello/", b"prefix /hello/* got /hello/"),
    ("/hello/x", b"prefix /hello/* got /hello/x"),
    ("/hello/worlds", b"prefix /hello/* got /hello/worlds"),
    ("/hello/world/", b"prefix /hello/* got /hello/world/"),
    ("/hello/deeper", b"prefix /hello/* got /hello/deeper"),
    ("/hello/deeper/", b"prefix /hello/deeper/* got /hello/deeper/"),
    ("/hello/deeper/and/deeper", b"prefix /hello/deeper/* got /hello/deeper/and/deeper"),
])
def test_prefix_routes_and_the_most_specific_wins(server, path, body):
    response = fetch(server, path)
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.body == body


def test_path_without_a_route_is_404(server):
    response = fetch(server, "/hello")  # /hello/* needs the slash
    assert response.status_line == "HTTP/1.1 404 Not Found"
    assert own_headers(response) == [("Content-Type", "text/html; charset=utf-8"),
                                     ("Content-Length", str(len(response.body)))]
    assert response.body == not_found_page(b"/hello")


def test_404_page_escapes_the_path(server):
    response = fetch(server, "/%3Cscript%3Ex&y")
    assert response.status == 404
    assert response.body == not_found_page(b"/&lt;script&gt;x&amp;y")


def test_non_ascii_route_matches_the_utf8_path(server):
    response = fetch(server, "/caf%C3%A9")
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.body == "caf\u00e9 route".encode("utf-8")


def test_not_found_overridden_on_the_instance(wsocket_process):
    server = wsocket_process("tests.framework_apps:custom_404", "--port", "0")
    response = fetch(server, "/missing?x=1")
    assert response.status_line == "HTTP/1.1 404 Not Found"
    assert own_headers(response) == [("Content-Type", "text/plain"), ("Content-Length", "23")]
    assert response.body == b"custom 404 for /missing"
    assert fetch(server, "/exists").body == b"exists"


def test_not_found_overridden_in_a_subclass(wsocket_process):
    server = wsocket_process("tests.framework_apps:subclass_404", "--port", "0")
    response = fetch(server, "/anything")
    assert response.status_line == "HTTP/1.1 418 I'm a Teapot"
    assert response.body == b"no route, a teapot"


def test_routes_belong_to_the_instance(wsocket_process):
    first, second = WSocketApp(), WSocketApp()

    @first.route("/mine")
    def mine(environ, start_response):
        return "mine"

    assert first.routes == {"/mine": mine}
    assert second.routes == {}
    assert second.find_route("/mine") is None
    assert "routes" not in vars(WSocketApp)
    # And in a server: another app of the same module knows none of app's routes.
    server = wsocket_process("tests.framework_apps:routes_only", "--port", "0")
    assert fetch(server, "/hello/world").status == 404
    assert fetch(server, "/only-here").body == b"only here"


def test_registering_a_route_again_replaces_it():
    app = WSocketApp()
    app.route("/x")(lambda environ, start_response: "old")
    new = app.route("/x")(lambda environ, start_response: "new")
    assert app.find_route("/x") is new


def test_route_mistakes_are_clear():
    app = WSocketApp()
    with pytest.raises(ValueError, match="starts with '/'"):
        app.route("hello")
    with pytest.raises(TypeError, match="is a str"):
        app.route(b"/hello")
    with pytest.raises(TypeError, match="callable"):
        app.route("/x")("not a function")
    wrapping = WSocketApp(lambda environ, start_response: [])
    with pytest.raises(TypeError, match="wraps"):
        wrapping.route("/x")


def test_star_alone_matches_every_path():
    app = WSocketApp()
    everything = app.route("*")(lambda environ, start_response: "all")
    exact = app.route("/one")(lambda environ, start_response: "one")
    assert app.find_route("/") is everything
    assert app.find_route("/any/thing") is everything
    assert app.find_route("/one") is exact


# -- start_response ----------------------------------------------------------------------

@pytest.mark.parametrize("kind, status_line", [
    ("no-args", "HTTP/1.1 200 OK"),
    ("int", "HTTP/1.1 201 Created"),
    ("code-only", "HTTP/1.1 404 Not Found"),
    ("full", "HTTP/1.1 404 Not Found"),
    ("own-phrase", "HTTP/1.1 404 Gone Fishing"),
    ("unknown-code", "HTTP/1.1 299 Success"),
    ("twice", "HTTP/1.1 202 Accepted"),
    ("not-called", "HTTP/1.1 200 OK"),
])
def test_forgiving_status(server, kind, status_line):
    response = fetch(server, "/status/" + kind)
    assert response.status_line == status_line
    assert response.body == b"status " + kind.encode()


def test_the_last_start_response_counts(server):
    response = fetch(server, "/status/twice")
    assert own_headers(response) == [("X-Second", "yes"),
                                     ("Content-Type", "text/html; charset=utf-8"),
                                     ("Content-Length", "12")]


@pytest.mark.parametrize("kind", ["list-headers", "dict-headers"])
def test_headers_as_a_list_or_a_dict(server, kind):
    response = fetch(server, "/status/" + kind)
    assert response.status_line == "HTTP/1.1 200 OK"
    assert own_headers(response) == [("X-One", "1"), ("X-Two", "2"),
                                     ("Content-Type", "text/plain"),
                                     ("Content-Length", str(len("status " + kind)))]


def test_a_bad_status_is_a_500_with_a_clear_log(server):
    response = fetch(server, "/status/bad")
    assert response.status_line == "HTTP/1.1 500 Internal Server Error"
    assert response.body == ERROR_PAGE
    wait_for(lambda: "an HTTP status starts with a three-digit code, like 404 or "
             "'404 Not Found', not 'two hundred'" in server.stderr(), what="the log")


@pytest.mark.parametrize("code, status_line", [(204, "HTTP/1.1 204 No Content"),
                                               (304, "HTTP/1.1 304 Not Modified")])
def test_204_and_304_lose_their_body_and_its_length(conn, code, status_line):
    sock, reader = conn
    sock.sendall(request("GET", "/nobody/%d" % code))
    response = reader.read_response()
    assert response.status_line == status_line
    assert own_headers(response) == [("Content-Type", "text/plain"), ("ETag", '"v1"')]
    # Nothing followed the head: the next response on the connection parses cleanly.
    sock.sendall(request("GET", "/hello/world"))
    assert reader.read_response().body == b"exact /hello/world"


def test_write_callable_comes_before_the_returned_body(server):
    response = fetch(server, "/write")
    assert own_headers(response) == [("Content-Type", "text/plain"),
                                     ("Content-Length", "22")]
    assert response.body == b"written, then returned"


def test_normalizing_outside_a_server():
    from wsocket.framework import normalize_headers, normalize_status
    from http import HTTPStatus
    assert normalize_status() == "200 OK"
    assert normalize_status(HTTPStatus.NOT_FOUND) == "404 Not Found"
    assert normalize_status(b"503") == "503 Service Unavailable"
    assert normalize_status(" 404 ") == "404 Not Found"
    assert normalize_status(599) == "599 Server Error"
    for bad in ("20", "2000 OK", "abc", 99, 1000, "404 Not\r\nX: y"):
        with pytest.raises(ValueError):
            normalize_status(bad)
    for bad in (None, 2.0, True):
        with pytest.raises(TypeError):
            normalize_status(bad)
    assert normalize_headers({"A": 1}) == [("A", "1")]
    assert normalize_headers([["A", "1"], ("B", b"2")]) == [("A", "1"), ("B", "2")]
    assert normalize_headers(None) == []
    with pytest.raises(ValueError, match="line break"):
        normalize_headers({"X-Evil": "a\r\nSet-Cookie: b"})
    with pytest.raises(ValueError, match="invalid header name"):
        normalize_headers([("Bad Name", "x")])
    with pytest.raises(TypeError, match="pair"):
        normalize_headers(["oops"])


# -- return values ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind, status_line, body", [
    ("str", "HTTP/1.1 200 OK", "h\u00e9llo \u2713".encode("utf-8")),
    ("bytes", "HTTP/1.1 200 OK", b"\x00\x01\xfe\xff"),
    ("bytearray", "HTTP/1.1 200 OK", b"array"),
    ("list", "HTTP/1.1 200 OK", b"text,bytes,42,1.5,<Shown object>"),
    ("tuple", "HTTP/1.1 200 OK", b"ab3"),
    ("set", "HTTP/1.1 200 OK", b"123"),
    ("dict", "HTTP/1.1 200 OK", b"key1key2"),
    ("dict-keys", "HTTP/1.1 200 OK", b"kj"),
    ("int", "HTTP/1.1 200 OK", b"1234"),
    ("float", "HTTP/1.1 200 OK", b"2.5"),
    ("bool", "HTTP/1.1 200 OK", b"True"),
    ("object", "HTTP/1.1 200 OK", b"<Shown object>"),
    ("none", "HTTP/1.1 200 OK", b""),
    ("empty-list", "HTTP/1.1 200 OK", b""),
    ("response", "HTTP/1.1 410 Gone", b"made by Response"),
])
def test_return_values_in_one_piece(server, kind, status_line, body):
    response = fetch(server, "/body/" + kind)
    assert response.status_line == status_line
    assert response.header("Transfer-Encoding") is None
    assert response.header("Content-Length") == str(len(body))
    assert response.body == body


def test_a_response_object_adds_its_headers(server):
    response = fetch(server, "/body/response")
    assert own_headers(response) == [("Content-Type", "text/plain; charset=utf-8"),
                                     ("X-From", "response"), ("Content-Length", "16")]


def test_response_class():
    response = Response("x", "404", {"A": 1})
    assert (response.body, response.status, response.headers) == ("x", "404 Not Found",
                                                                   [("A", "1")])


def test_generator_chunks_go_as_they_come(conn):
    sock, reader = conn
    sock.sendall(request("GET", "/gen/mixed"))
    status_line, headers = reader.read_head()
    assert status_line == "HTTP/1.1 200 OK"
    assert [(n, v) for n, v in headers if n not in ("Date", "Server")] == [
        ("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")]
    chunks = []
    while True:
        chunk = read_chunk(reader)
        if not chunk:
            break
        chunks.append(chunk)
    # One chunk per yield; "" and None yield nothing.
    assert chunks == [b"one,", b"two,", b"3", b",four"]


def test_start_response_inside_a_generator(server):
    response = fetch(server, "/gen/status")
    assert response.status_line == "HTTP/1.1 203 Non-Authoritative Information"
    assert own_headers(response) == [("X-Generated", "yes"),
                                     ("Content-Type", "text/html; charset=utf-8"),
                                     ("Transfer-Encoding", "chunked")]
    assert response.body == b"from a generator"


def test_first_chunk_arrives_while_the_generator_still_runs(server, conn):
    sock, reader = conn
    gate = uuid.uuid4().hex
    started = time.monotonic()
    sock.sendall(request("GET", "/gen/gated?id=" + gate))
    status_line, _ = reader.read_head()
    assert status_line == "HTTP/1.1 200 OK"
    # The generator now waits (up to 30 s) for its gate, which only this test opens.
    assert read_chunk(reader) == b"first chunk\n"
    first_chunk_after = time.monotonic() - started
    assert first_chunk_after < 10, first_chunk_after
    assert fetch(server, "/gen/open?id=" + gate).body == b"opened"
    assert read_chunk(reader) == b"after the gate\n"
    assert read_chunk(reader) == b""


def test_generator_is_closed_after_the_response(server):
    name = uuid.uuid4().hex
    assert fetch(server, "/gen/tracked?id=" + name).body == b"step 1,step 2"
    seen = report(server)
    assert [step for step in seen["generator_steps"] if step.startswith(name)] == [
        name + ":1", name + ":2"]
    assert "generator " + name in seen["closed"]


def test_generator_failing_before_its_first_chunk_gives_500(server):
    response = fetch(server, "/gen/fails-early")
    assert response.status_line == "HTTP/1.1 500 Internal Server Error"
    assert response.body == ERROR_PAGE


def test_generator_failing_midway_ends_the_connection_without_the_last_chunk(server, conn):
    sock, reader = conn
    sock.sendall(request("GET", "/gen/fails-later"))
    status_line, _ = reader.read_head()
    assert status_line == "HTTP/1.1 200 OK"
    assert read_chunk(reader) == b"partial"
    with pytest.raises(EOFError):
        read_chunk(reader)  # no "0\r\n\r\n": the client knows the body is cut short
    wait_for(lambda: "RuntimeError: generator failed in the middle" in server.stderr(),
             what="the traceback in the log")


# -- files ------------------------------------------------------------------------------------

def test_text_file_is_sent_as_utf8_and_closed(server, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("l\u00ednea uno\nline two \u2713\n", encoding="utf-8")
    response = fetch(server, "/file/text?path=%s" % path)
    assert response.status_line == "HTTP/1.1 200 OK"
    assert own_headers(response) == [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Transfer-Encoding", "chunked")]
    assert response.body == "l\u00ednea uno\nline two \u2713\n".encode("utf-8")
    assert_closed_in_server(server, path)


def test_text_file_in_another_encoding_is_sent_as_utf8(server, tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"caf\xe9\n")
    response = fetch(server, "/file/text?path=%s&encoding=latin-1" % path)
    assert response.body == b"caf\xc3\xa9\n"
    assert_closed_in_server(server, path)


def test_binary_file_streams_in_blocks_with_its_length_and_is_closed(server, tmp_path, conn):
    data = os.urandom(300_001)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    sock, reader = conn
    sock.sendall(request("GET", "/file/binary?path=%s" % path))
    response = reader.read_response()
    assert response.status_line == "HTTP/1.1 200 OK"
    assert own_headers(response) == [("Content-Type", "application/octet-stream"),
                                     ("Content-Length", "300001")]
    assert response.body == data
    assert_closed_in_server(server, path)
    # The length was right: the connection goes on.
    sock.sendall(request("GET", "/hello/world"))
    assert reader.read_response().body == b"exact /hello/world"


def test_file_type_is_guessed_from_its_name(server, tmp_path):
    path = tmp_path / "pixel.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    response = fetch(server, "/file/binary?path=%s" % path)
    assert own_headers(response) == [("Content-Type", "image/png"), ("Content-Length", "8")]
    assert response.body == b"\x89PNG\r\n\x1a\n"


def test_head_of_a_file_sends_no_body_and_closes_it(server, tmp_path, conn):
    path = tmp_path / "head.bin"
    path.write_bytes(b"x" * 5000)
    sock, reader = conn
    sock.sendall(request("HEAD", "/file/binary?path=%s" % path))
    response = reader.read_response("HEAD")
    assert response.status_line == "HTTP/1.1 200 OK"
    assert own_headers(response) == [("Content-Type", "application/octet-stream"),
                                     ("Content-Length", "5000")]
    assert_closed_in_server(server, path)
    sock.sendall(request("GET", "/hello/world"))
    assert reader.read_response().body == b"exact /hello/world"


def test_file_like_objects_are_read_in_blocks_never_whole(server):
    name = uuid.uuid4().hex
    response = fetch(server, "/file/recording?id=%s&size=200000" % name)
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.body == b"r" * 200000
    seen = wait_for(lambda: (lambda r: r if "reader " + name in r["closed"] else None)(
        report(server)), what="the reader to be closed")
    sizes = seen["read_sizes"]
    assert sizes and all(size == 65536 for size in sizes), sizes


def test_bytesio_and_stringio(server):
    response = fetch(server, "/file/bytesio")
    assert response.header("Content-Type") == "application/octet-stream"
    assert response.body == bytes(range(256)) * 1000
    response = fetch(server, "/file/stringio")
    assert response.body == "string io \u00e9".encode("utf-8")


def test_file_wrapper_is_used_when_the_server_offers_one(tmp_path):
    """wsgiref offers wsgi.file_wrapper: binary files go through it."""
    wrapped = []

    class RecordingWrapper(wsgiref.util.FileWrapper):
        def __init__(self, filelike, blksize=8192):
            wrapped.append(blksize)
            super().__init__(filelike, blksize)

    class Handler(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *args):
            pass

    path = tmp_path / "data.bin"
    path.write_bytes(b"y" * 100_000)
    files = []
    app = WSocketApp()

    @app.route("/file")
    def send_file(environ, start_response):
        environ["wsgi.file_wrapper"] = RecordingWrapper
        files.append(open(path, "rb"))
        return files[-1]

    httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Handler)
    httpd.timeout = TIMEOUT
    sock = open_connection("127.0.0.1", httpd.server_port)
    try:
        sock.sendall(request("GET", "/file", [("Connection", "close")]))
        httpd.handle_request()
        response = Reader(sock).read_response()
    finally:
        sock.close()
        httpd.server_close()
    assert response.status_line.startswith("HTTP/1.0 200 OK")
    assert response.header("Content-Length") == "100000"
    assert response.body == b"y" * 100_000
    assert wrapped == [65536]
    assert files[0].closed


# -- HEAD ----------------------------------------------------------------------------------

def test_head_gets_the_length_of_get_and_no_body(conn):
    sock, reader = conn
    sock.sendall(request("HEAD", "/body/str"))
    response = reader.read_response("HEAD")
    assert response.status_line == "HTTP/1.1 200 OK"
    assert own_headers(response) == [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", "10")]
    sock.sendall(request("GET", "/body/str"))
    assert reader.read_response().body == "h\u00e9llo \u2713".encode("utf-8")


def test_head_of_a_generator_runs_it_only_to_its_first_chunk(server, conn):
    sock, reader = conn
    name = uuid.uuid4().hex
    sock.sendall(request("HEAD", "/gen/tracked?id=" + name))
    response = reader.read_response("HEAD")
    assert response.status_line == "HTTP/1.1 200 OK"
    assert own_headers(response) == [("Content-Type", "text/plain")]
    sock.sendall(request("GET", "/hello/world"))
    assert reader.read_response().body == b"exact /hello/world"
    seen = report(server)
    assert [step for step in seen["generator_steps"] if step.startswith(name)] == [name + ":1"]
    assert "generator " + name in seen["closed"]


# -- errors -------------------------------------------------------------------------------

def test_exception_gives_500_and_a_logged_traceback_not_shown(server):
    response = fetch(server, "/error")
    assert response.status_line == "HTTP/1.1 500 Internal Server Error"
    assert own_headers(response) == [("Content-Type", "text/html; charset=utf-8"),
                                     ("Content-Length", str(len(ERROR_PAGE)))]
    assert response.body == ERROR_PAGE
    log = wait_for(lambda: (lambda text: text if "ValueError: <boom> & bust" in text
                            else None)(server.stderr()), what="the traceback in the log")
    assert "error in route handler error for GET /error\nTraceback (most recent call last):" \
        in log


def test_exception_after_start_response_still_gives_500(server):
    response = fetch(server, "/error/after-start")
    assert response.status_line == "HTTP/1.1 500 Internal Server Error"
    assert response.header("X-Lost") is None
    assert response.body == ERROR_PAGE


def test_debug_shows_the_escaped_traceback(debug_server):
    response = fetch(debug_server, "/error")
    assert response.status_line == "HTTP/1.1 500 Internal Server Error"
    page = response.body.decode("utf-8")
    assert page.startswith('<!doctype html>\n<html lang="en">\n')
    assert "<p>The server met an error while answering this request.</p>\n" \
           "<pre>Traceback (most recent call last):\n" in page
    assert 'in debug_error\n    raise ValueError(&quot;&lt;boom&gt; &amp; bust&quot;)\n' in page
    assert "ValueError: &lt;boom&gt; &amp; bust\n</pre>\n</body>\n</html>\n" in page
    assert "<boom>" not in page
    wait_for(lambda: "ValueError: <boom> & bust" in debug_server.stderr(), what="the log")


# -- WebSockets in a framework app ------------------------------------------------------------

def test_websocket_route_gets_wsgi_websocket(server):
    with connect(server.ws_url + "ws/route?x=1", open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as websocket:
        websocket.send("hi")
        assert websocket.recv(timeout=TIMEOUT) == "route got: hi"
    assert fetch(server, "/ws/route").body == b"the WebSocket route, over plain HTTP"


def test_websocket_route_written_as_a_generator(server):
    with connect(server.ws_url + "ws/generator", open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as websocket:
        for text in ("a", "b"):
            websocket.send(text)
            assert websocket.recv(timeout=TIMEOUT) == "generator route got: " + text


def test_websocket_without_a_route_goes_to_the_events(server):
    with connect(server.ws_url + "somewhere/else?q=1", open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as websocket:
        websocket.send("hi")
        assert websocket.recv(timeout=TIMEOUT) == "event got: hi at /somewhere/else"


def test_routes_without_events_answer_an_unrouted_websocket_with_404(wsocket_process):
    server = wsocket_process("tests.framework_apps:routes_only", "--port", "0")
    sock = open_connection(server.host, server.port)
    try:
        sock.sendall(upgrade_request("/elsewhere", host="%s:%d" % (server.host, server.port)))
        response = Reader(sock).read_response()
    finally:
        sock.close()
    assert response.status_line == "HTTP/1.1 404 Not Found"
    assert response.body == not_found_page(b"/elsewhere")
    with connect(server.ws_url + "only-here", open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as websocket:
        assert websocket.recv(timeout=TIMEOUT) == "only-here route"


def test_no_demo_page_once_something_is_attached(server):
    assert fetch(server, "/").status == 404


def test_404_page_shows_a_non_ascii_path_as_text(server):
    response = fetch(server, "/caf%C3%A9s")
    assert response.status == 404
    assert response.body == not_found_page("/caf\u00e9s".encode("utf-8"))
