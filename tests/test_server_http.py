"""Plain HTTP/1.1 on wsocket's server, next to WebSockets on the same port."""

import http.client
import socket
import threading
import time
import urllib.request

import pytest
from websockets.sync.client import connect

from tests import apps
from wsocket import make_server
from tests.netutil import TIMEOUT, Reader, open_connection, request, ws_url


@pytest.fixture(scope="module")
def server():
    """One in-process server for the module (stopping one takes up to 0.5 s)."""
    server = make_server("127.0.0.1", 0, apps.http).start()
    yield server
    server.stop(timeout=5)


@pytest.fixture
def conn(server):
    sock = open_connection("127.0.0.1", server.server_port)
    yield sock, Reader(sock)
    sock.close()


def test_keep_alive_serves_two_requests_on_one_connection(conn):
    sock, reader = conn
    sock.sendall(request("GET", "/first"))
    first = reader.read_response()
    assert first.status_line == "HTTP/1.1 200 OK"
    assert first.body == b"plain HTTP GET /first"
    assert first.header("Content-Length") == "21"
    assert first.header("Connection") is None  # HTTP/1.1 stays open by default
    sock.sendall(request("GET", "/second"))
    second = reader.read_response()
    assert second.status_line == "HTTP/1.1 200 OK"
    assert second.body == b"plain HTTP GET /second"


def test_pipelined_requests_are_answered_in_order(conn):
    sock, reader = conn
    sock.sendall(request("GET", "/a") + request("GET", "/b") + request("GET", "/c"))
    bodies = [reader.read_response().body for _ in range(3)]
    assert bodies == [b"plain HTTP GET /a", b"plain HTTP GET /b", b"plain HTTP GET /c"]


def test_content_length_body_is_read_exactly(conn):
    sock, reader = conn
    body = bytes(range(256)) * 300  # more than one recv, every byte value
    sock.sendall(request("POST", "/body", [("Content-Length", str(len(body)))], body))
    response = reader.read_response()
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.body == body
    # The body ended where Content-Length said: the next request parses cleanly.
    sock.sendall(request("GET", "/after"))
    assert reader.read_response().body == b"plain HTTP GET /after"


def test_chunked_request_body(conn):
    sock, reader = conn
    chunked = b"5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
    sock.sendall(request("POST", "/body", [("Transfer-Encoding", "chunked")], chunked))
    response = reader.read_response()
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.body == b"hello world"
    sock.sendall(request("GET", "/after"))
    assert reader.read_response().body == b"plain HTTP GET /after"


def test_chunked_request_body_read_by_lines(conn):
    sock, reader = conn
    chunked = b"3\r\none\r\n5\r\n\ntwo\n\r\n6\r\nthree\n\r\n0\r\n\r\n"
    sock.sendall(request("POST", "/lines", [("Transfer-Encoding", "chunked")], chunked))
    assert reader.read_response().body == repr([b"one\n", b"two\n", b"three\n"]).encode()


def test_chunked_body_arriving_in_pieces(conn):
    sock, reader = conn
    sock.sendall(request("POST", "/body", [("Transfer-Encoding", "chunked")]))
    for piece in (b"a\r\n0123", b"456789\r", b"\n0\r", b"\n\r\n"):
        sock.sendall(piece)
    assert reader.read_response().body == b"0123456789"


def test_unread_body_is_skipped_before_the_next_request(conn):
    sock, reader = conn
    # tests.apps.echo never reads wsgi.input.
    sock.sendall(request("POST", "/ignored", [("Content-Length", "10")], b"0123456789"))
    assert reader.read_response().body == b"plain HTTP POST /ignored"
    sock.sendall(request("GET", "/next"))
    assert reader.read_response().body == b"plain HTTP GET /next"


def test_head_gets_headers_and_no_body(conn):
    sock, reader = conn
    sock.sendall(request("HEAD", "/page"))
    response = reader.read_response(method="HEAD")
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.header("Content-Length") == str(len(b"plain HTTP HEAD /page"))
    # Had a body been sent, the next response would start with it.
    sock.sendall(request("GET", "/page"))
    following = reader.read_response()
    assert following.status_line == "HTTP/1.1 200 OK"
    assert following.body == b"plain HTTP GET /page"


def test_head_of_a_streamed_response_has_no_body_and_no_chunking(conn):
    sock, reader = conn
    sock.sendall(request("HEAD", "/stream"))
    response = reader.read_response(method="HEAD")
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.header("Transfer-Encoding") is None
    sock.sendall(request("GET", "/x", [("Connection", "close")]))
    following = reader.read_response()
    assert following.status_line == "HTTP/1.1 200 OK"
    assert following.body == b"plain HTTP GET /x"


def test_response_without_length_is_chunked_under_http11(conn):
    sock, reader = conn
    sock.sendall(request("GET", "/stream", [("Connection", "close")]))
    status_line, headers = reader.read_head()
    assert status_line == "HTTP/1.1 200 OK"
    names = {name.lower(): value for name, value in headers}
    assert names["transfer-encoding"] == "chunked"
    assert "content-length" not in names
    assert names["connection"] == "close"
    raw = reader.read_to_eof()
    assert raw == b"6\r\nfirst,\r\n7\r\nsecond,\r\n5\r\nthird\r\n0\r\n\r\n"


def test_chunked_response_keeps_the_connection_usable(conn):
    sock, reader = conn
    sock.sendall(request("GET", "/stream"))
    response = reader.read_response()
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.body == b"first,second,third"
    sock.sendall(request("GET", "/again"))
    assert reader.read_response().body == b"plain HTTP GET /again"


def test_response_without_length_under_http10_ends_with_the_connection(conn):
    sock, reader = conn
    sock.sendall(request("GET", "/stream", http_version="HTTP/1.0"))
    status_line, headers = reader.read_head()
    assert status_line == "HTTP/1.1 200 OK"
    names = {name.lower(): value for name, value in headers}
    assert "transfer-encoding" not in names
    assert names["connection"] == "close"
    assert reader.read_to_eof() == b"first,second,third"


def test_http10_keep_alive_on_request(conn):
    sock, reader = conn
    sock.sendall(request("GET", "/one", [("Connection", "keep-alive")], http_version="HTTP/1.0"))
    response = reader.read_response()
    assert response.header("Connection") == "keep-alive"
    assert response.body == b"plain HTTP GET /one"
    sock.sendall(request("GET", "/two", http_version="HTTP/1.0"))
    response = reader.read_response()
    assert response.header("Connection") == "close"
    assert response.body == b"plain HTTP GET /two"
    assert reader.read_to_eof() == b""


def test_connection_close_is_honoured(conn):
    sock, reader = conn
    sock.sendall(request("GET", "/bye", [("Connection", "close")]))
    response = reader.read_response()
    assert response.header("Connection") == "close"
    assert response.body == b"plain HTTP GET /bye"
    assert reader.read_to_eof() == b""


def test_app_exception_gives_500_and_closes(conn):
    sock, reader = conn
    sock.sendall(request("GET", "/fail"))
    response = reader.read_response()
    assert response.status_line == "HTTP/1.1 500 Internal Server Error"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.header("Connection") == "close"
    assert response.body == b"Internal Server Error\n"
    assert reader.read_to_eof() == b""


def test_malformed_request_line_gets_400_in_plain_text(conn):
    sock, reader = conn
    sock.sendall(b"NONSENSE\r\n\r\n")
    response = reader.read_response()
    assert response.status_line == "HTTP/1.1 400 Bad Request"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.body == b"400 Bad Request: malformed request line\n"
    assert reader.read_to_eof() == b""


@pytest.mark.parametrize("raw, status_line, phrase", [
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported",
     b"HTTP/2.0"),
    (b"GET /\r\n\r\n", "HTTP/1.1 400 Bad Request", b"malformed request line"),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "HTTP/1.1 400 Bad Request",
     b"malformed header"),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     "HTTP/1.1 400 Bad Request", b"Transfer-Encoding and Content-Length"),
    (b"POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\n", "HTTP/1.1 400 Bad Request",
     b"Content-Length"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501 Not Implemented",
     b"gzip"),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
     "HTTP/1.1 431 Request Header Fields Too Large", b"request head"),
])
def test_unparsable_requests_get_a_plain_text_error_and_the_end(server, raw, status_line,
                                                                phrase):
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        sock.sendall(raw)
        reader = Reader(sock)
        response = reader.read_response()
        assert response.status_line == status_line
        assert response.header("Content-Type") == "text/plain; charset=utf-8"
        assert response.header("Connection") == "close"
        assert phrase in response.body and response.body.endswith(b"\n")
        assert reader.read_to_eof() == b""


def test_bad_chunk_size_ends_the_connection(conn):
    sock, reader = conn
    sock.sendall(request("POST", "/body", [("Transfer-Encoding", "chunked")], b"zz\r\n"))
    response = reader.read_response()
    # The app was reading its body when the error came; the client is to blame.
    assert response.status_line == "HTTP/1.1 400 Bad Request"
    assert response.body == b"invalid chunk size\n"
    assert reader.read_to_eof() == b""


def test_empty_lines_before_a_request_are_ignored(conn):
    sock, reader = conn
    sock.sendall(b"\r\n\r\n" + request("GET", "/after-blank"))
    assert reader.read_response().body == b"plain HTTP GET /after-blank"


def test_query_and_percent_decoding_reach_the_app(serve):
    seen = {}

    def app(environ, start_response):
        seen.update(path=environ["PATH_INFO"], query=environ["QUERY_STRING"],
                    host=environ["HTTP_HOST"], remote=environ["REMOTE_ADDR"])
        start_response("204 No Content", [])
        return []

    server = serve(app)
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        sock.sendall(request("GET", "/a%20b/c?x=1&y=%20"))
        response = Reader(sock).read_response()
    assert response.status_line == "HTTP/1.1 204 No Content"
    assert response.header("Content-Length") is None
    assert seen == {"path": "/a b/c", "query": "x=1&y=%20", "host": "127.0.0.1",
                    "remote": "127.0.0.1"}


def test_http_and_websocket_share_the_port_of_the_command_line_server(echo_process):
    with connect(echo_process.ws_url + "chat", open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as websocket:
        websocket.send("while HTTP is served")
        # Plain requests on other connections while the WebSocket stays open.
        for path in ("/", "/plain/page"):
            with urllib.request.urlopen(echo_process.url.rstrip("/") + path,
                                        timeout=TIMEOUT) as answer:
                assert answer.status == 200
                assert answer.read() == ("plain HTTP GET %s" % path).encode()
        assert websocket.recv(timeout=TIMEOUT) == "while HTTP is served"
        websocket.send(b"\x00\xff")
        assert websocket.recv(timeout=TIMEOUT) == b"\x00\xff"


def test_http_client_keep_alive_against_in_process_server(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=TIMEOUT)
    try:
        for path in ("/one", "/two", "/three"):
            connection.request("GET", path)
            answer = connection.getresponse()
            assert (answer.status, answer.read()) == (200, ("plain HTTP GET %s" % path).encode())
        connection.request("POST", "/body", body=b"x" * 1000)
        assert connection.getresponse().read() == b"x" * 1000
    finally:
        connection.close()
    with connect(ws_url(server, "/ws"), open_timeout=TIMEOUT) as websocket:
        websocket.send("same port")
        assert websocket.recv(timeout=TIMEOUT) == "same port"


def test_stop_lets_a_request_in_progress_finish(serve):
    server = serve(apps.http)
    sock = open_connection("127.0.0.1", server.server_port)
    idle = open_connection("127.0.0.1", server.server_port)
    with sock, idle:
        reader, idle_reader = Reader(sock), Reader(idle)
        idle.sendall(request("GET", "/warm"))
        assert idle_reader.read_response().body == b"plain HTTP GET /warm"
        sock.sendall(request("GET", "/slow"))
        time.sleep(0.2)  # the app is sleeping now
        stopper = threading.Thread(target=server.stop, kwargs={"timeout": 5})
        started = time.monotonic()
        stopper.start()
        try:
            # The idle keep-alive connection is ended at once ...
            assert idle_reader.read_to_eof() == b""
            # ... the busy one gets its whole response, then the end.
            response = reader.read_response()
            assert response.status_line == "HTTP/1.1 200 OK"
            assert response.body == b"slow but complete"
            assert reader.read_to_eof() == b""
        finally:
            stopper.join(10)
        assert time.monotonic() - started < 3


def test_generator_app_may_call_start_response_when_iterated(serve):
    """PEP 3333: a generator's start_response runs at its first iteration."""
    def app(environ, start_response):
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        yield b"late "
        yield b"start"

    server = serve(app)
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        sock.sendall(request("GET", "/"))
        response = Reader(sock).read_response()
    assert response.status_line == "HTTP/1.1 202 Accepted"
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.body == b"late start"


def test_head_with_an_empty_body_does_not_claim_length_zero(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    server = serve(app)
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        sock.sendall(request("HEAD", "/"))
        reader = Reader(sock)
        response = reader.read_response("HEAD")
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.header("Content-Length") is None
    assert response.header("Transfer-Encoding") is None


def test_keep_alive_responses_are_sent_without_nagle_delay(serve):
    # TCP_NODELAY, set before the first response (a WebSocket's transport sets
    # its own): the second response need not wait for the delayed ACK of the first.
    no_delay = []

    def app(environ, start_response):
        connection = environ["wsocket.takeover"].handler.connection
        no_delay.append(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = serve(app)
    with open_connection("127.0.0.1", server.server_port) as sock:
        reader = Reader(sock)
        for _ in range(2):
            sock.sendall(request("GET", "/"))
            assert reader.read_response().body == b"ok"
    assert no_delay[1]
