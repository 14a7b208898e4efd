"""Raw HTTP/1.1 requests an attacker (or a confused proxy) sends, and what RFC 9112 asks.

Shared by tests/test_http_edge.py (wsocket's server, exact answers) and
its comparison with gunicorn. Each ``Case`` is bytes on a fresh connection
to tests/http_edge_app.py, the status wsocket must answer, whether it must
close the connection after, what the app must have seen (for requests it
runs), and whether RFC 9110/9112 require the request to be refused
(``must_refuse``) - what the comparison counts - or wsocket refuses it by
its own policy (``policy``: its limits, bounds and the versions it speaks).
"""

from typing import NamedTuple, Optional


class Case(NamedTuple):
    name: str
    raw: bytes
    status: int
    closed: bool
    seen: Optional[dict] = None  # a subset of what the app answers (method, path, ...)
    # Refused by wsocket's own policy (a limit, a bound, a version), not because
    # RFC 9110/9112 require it: not counted as a required refusal.
    policy: bool = False

    @property
    def must_refuse(self) -> bool:
        return self.status >= 400 and not self.policy


def _get(target=b"/", version=b"HTTP/1.1", headers=b"Host: x\r\n"):
    return b"GET " + target + b" " + version + b"\r\n" + headers + b"\r\n"


def _post(headers, body=b"", version=b"HTTP/1.1", target=b"/"):
    return b"POST " + target + b" " + version + b"\r\nHost: x\r\n" + headers + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked\r\n"

CASES = [
    # -- 2. request targets: only absolute-form is rewritten, its authority is the Host
    Case("path with :// stays", _get(b"/public/x://y/admin"), 200, False,
         {"path": "/public/x://y/admin"}),
    Case("absolute-form", _get(b"http://example.com:8080/a%20b?q=1", headers=b"Host: other\r\n"),
         200, False, {"path": "/a b", "query": "q=1",
                      "headers": {"HTTP_HOST": "example.com:8080"}}),
    Case("absolute-form https, no path", _get(b"HTTPS://example.com"), 200, False,
         {"path": "/", "headers": {"HTTP_HOST": "example.com"}}),
    Case("absolute-form other scheme", _get(b"ftp://example.com/admin"), 400, True, policy=True),
    Case("absolute-form with userinfo", _get(b"http://u@example.com/"), 400, True),
    Case("relative target", _get(b"admin"), 400, True),
    Case("asterisk for GET", _get(b"*"), 400, True),
    # -- 3. header lines
    Case("obs-text in a value", _get(headers=b"Host: x\r\nX-Name: caf\xe9\r\n"), 200, False,
         {"headers": {"HTTP_X_NAME": "caf\u00e9"}}),
    Case("value OWS trimmed, HTAB kept inside",
         _get(headers=b"Host: x\r\nX-A: \t a\tb \t\r\n"), 200, False,
         {"headers": {"HTTP_X_A": "a\tb"}}),
    Case("empty value", _get(headers=b"Host: x\r\nX-Empty:\r\n"), 200, False,
         {"headers": {"HTTP_X_EMPTY": ""}}),
    Case("underscore name dropped", _get(headers=b"Host: x\r\nX_Forwarded_For: 1.2.3.4\r\n"),
         200, False, {"headers": {"HTTP_HOST": "x"}}),
    Case("underscore name dropped beside known names",
         _get(headers=b"Host: x\r\nX-A: 1\r\nX_A: 2\r\n"), 200, False,
         {"headers": {"HTTP_HOST": "x", "HTTP_X_A": "1"}}),
    Case("repeated header joined with a comma",
         _get(headers=b"Host: x\r\nX-Repeated: a\r\nX-Other: o\r\nx-repeated: b\r\n"), 200,
         False, {"headers": {"HTTP_X_REPEATED": "a,b", "HTTP_X_OTHER": "o"}}),
    Case("repeated Cookie joined with a semicolon",
         _get(headers=b"Host: x\r\nCookie: a=1\r\nCookie: b=2\r\n"), 200, False,
         {"headers": {"HTTP_COOKIE": "a=1; b=2"}}),
    Case("bare CR in a value", _get(headers=b"Host: x\r\nX: a\rTransfer-Encoding: chunked\r\n"),
         400, True),
    Case("bare LF inside the head",
         _post(b"X: a\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"),
         400, True),
    Case("bare LF line ends", b"GET / HTTP/1.1\nHost: x\n\n", 400, True),
    Case("LF CRLF line end", b"GET / HTTP/1.1\r\nHost: x\n\r\n\r\n", 400, True),
    Case("NUL in a value", _get(headers=b"Host: x\r\nX: a\x00b\r\n"), 400, True),
    Case("VT in a value", _get(headers=b"Host: x\r\nX: a\x0bb\r\n"), 400, True),
    Case("DEL in a value", _get(headers=b"Host: x\r\nX: a\x7fb\r\n"), 400, True),
    Case("ESC in a value", _get(headers=b"Host: x\r\nX: \x1b[31m\r\n"), 400, True),
    Case("non-token name X(A)", _get(headers=b"Host: x\r\nX(A): 1\r\n"), 400, True),
    Case("NUL in a name", _post(b"Content-Length\x00: 5\r\n", b"hello"), 400, True),
    Case("Latin-1 sharp s in a name (upper() gives SS)",
         _get(headers=b"Host: x\r\nX-Forwarded-\xdfl: on\r\n"), 400, True),
    Case("UTF-8 in a name", _get(headers=b"Host: x\r\nX-\xc3\xa9: 1\r\n"), 400, True),
    Case("space before the colon", _get(headers=b"Host: x\r\nContent-Length : 5\r\n"), 400, True),
    Case("empty name", _get(headers=b"Host: x\r\n: 5\r\n"), 400, True),
    Case("no colon", _get(headers=b"Host: x\r\nno colon\r\n"), 400, True),
    Case("obs-fold", _get(headers=b"Host: x\r\nX: a\r\n b\r\n"), 400, True),
    Case("whitespace before the first header",
         b"GET / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n\r\n", 400, True),
    # -- 4. chunked framing
    Case("chunked", _post(CHUNKED, b"5\r\nhello\r\n6;a=b;c=\"d \\\" e\"\r\n world\r\n"
                                   b"0\r\nX-Trailer: t\r\n\r\n"), 200, False,
         {"body": "hello world"}),
    Case("chunk size uppercase hex, leading zeros", _post(CHUNKED, b"000A\r\n0123456789\r\n0\r\n\r\n"),
         200, False, {"body": "0123456789"}),
    Case("chunk extension with BWS", _post(CHUNKED, b"5; a = b ;c\r\nhello\r\n0\r\n\r\n"), 200,
         False, {"body": "hello"}),
    Case("whitespace after the chunk size", _post(CHUNKED, b"5 ;a=b\r\nhello\r\n0\r\n\r\n"),
         400, True, policy=True),
    Case("chunk size -1", _post(CHUNKED, b"-1\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case("chunk size +5", _post(CHUNKED, b"+5\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case("chunk size 0x5", _post(CHUNKED, b"0x5\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case("chunk size 0_5", _post(CHUNKED, b"0_5\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case("chunk size with leading space", _post(CHUNKED, b" 5\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case("chunk size empty", _post(CHUNKED, b"\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case("chunk size 2**70", _post(CHUNKED, b"400000000000000000\r\nhello\r\n0\r\n\r\n"), 400,
         True, policy=True),
    Case("chunk size 17 digits", _post(CHUNKED, b"00000000000000005\r\nhello\r\n0\r\n\r\n"), 400,
         True, policy=True),
    Case("no CRLF after chunk data", _post(CHUNKED, b"5\r\nhelloXX0\r\n\r\n"), 400, True),
    Case("LF alone after chunk data", _post(CHUNKED, b"5\r\nhello\n0\r\n\r\n"), 400, True),
    Case("bare LF after chunk size", _post(CHUNKED, b"5\nhello\r\n0\r\n\r\n"), 400, True),
    Case("bad chunk extension", _post(CHUNKED, b"5;=x\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case("control byte in chunk extension", _post(CHUNKED, b"5;a=\x01\r\nhello\r\n0\r\n\r\n"),
         400, True),
    Case("malformed trailer", _post(CHUNKED, b"5\r\nhello\r\n0\r\nno colon\r\n\r\n"), 400, True),
    Case("bare LF in the trailers", _post(CHUNKED, b"5\r\nhello\r\n0\r\nX: 1\n\r\n"), 400, True),
    # -- 5. Transfer-Encoding
    Case("empty Transfer-Encoding with Content-Length",
         _post(b"Transfer-Encoding:\r\nContent-Length: 5\r\n", b"hello"), 400, True),
    Case("empty Transfer-Encoding", _post(b"Transfer-Encoding: \r\n"), 400, True),
    Case("Transfer-Encoding on HTTP/1.0",
         _post(CHUNKED, b"5\r\nhello\r\n0\r\n\r\n", version=b"HTTP/1.0"), 400, True),
    Case("chunked not final", _post(b"Transfer-Encoding: chunked, identity\r\n"), 400, True),
    Case("chunked twice", _post(b"Transfer-Encoding: chunked, chunked\r\n"), 400, True),
    Case("chunked then gzip in two fields",
         _post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), 400, True),
    Case("gzip", _post(b"Transfer-Encoding: gzip\r\n"), 501, True),
    Case("gzip, chunked", _post(b"Transfer-Encoding: gzip, chunked\r\n",
                                b"5\r\nhello\r\n0\r\n\r\n"), 501, True),
    Case("xchunked", _post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), 501, True),
    Case("Transfer-Encoding and Content-Length",
         _post(b"Content-Length: 5\r\n" + CHUNKED, b"0\r\n\r\nhello"), 400, True),
    Case("chunked with a parameter", _post(b"Transfer-Encoding: chunked;q=1\r\n"), 400, True),
    Case("Chunked in capitals", _post(b"Transfer-Encoding: CHUNKED\r\n", b"2\r\nok\r\n0\r\n\r\n"),
         200, False, {"body": "ok"}),
    # -- 6. Content-Length
    Case("Content-Length", _post(b"Content-Length: 5\r\n", b"hello"), 200, False,
         {"body": "hello", "headers": {"CONTENT_LENGTH": "5"}}),
    Case("Content-Length superscript two", _post(b"Content-Length: \xb2\r\n", b"he"), 400, True),
    Case("Content-Length +5", _post(b"Content-Length: +5\r\n", b"hello"), 400, True),
    Case("Content-Length -5", _post(b"Content-Length: -5\r\n", b"hello"), 400, True),
    Case("Content-Length 0x5", _post(b"Content-Length: 0x5\r\n", b"hello"), 400, True),
    Case("Content-Length 5.0", _post(b"Content-Length: 5.0\r\n", b"hello"), 400, True),
    Case("Content-Length 1_0", _post(b"Content-Length: 1_0\r\n", b"0123456789"), 400, True),
    Case("Content-Length empty", _post(b"Content-Length: \r\n"), 400, True),
    Case("Content-Length 30 digits", _post(b"Content-Length: " + b"9" * 30 + b"\r\n"), 400,
         True, policy=True),
    Case("Content-Length list that differs", _post(b"Content-Length: 5, 6\r\n", b"hello!"),
         400, True),
    Case("two Content-Lengths that differ",
         _post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), 400, True),
    Case("two Content-Lengths alike",
         _post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), 200, False,
         {"body": "hello", "headers": {"CONTENT_LENGTH": "5"}}),
    Case("Content-Length past max_body_size", _post(b"Content-Length: 2000\r\n", b"x" * 2000),
         413, True, policy=True),
    Case("chunked past max_body_size",
         _post(CHUNKED, b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n"), 413, True, policy=True),
    Case("malformed chunked body read by a route",
         _post(CHUNKED, b"5\r\nhelloXX", target=b"/route/read"), 400, True),
    Case("body past max_body_size read by a route",
         _post(CHUNKED, b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n", target=b"/route/read"),
         413, True, policy=True),
    Case("chunked body read by a route",
         _post(CHUNKED, b"5\r\nhello\r\n0\r\n\r\n", target=b"/route/read"), 200, False),
    Case("unread malformed chunked body", _post(CHUNKED, b"-1\r\nhello\r\n", target=b"/noread"),
         200, True),
    # -- 8. Host
    Case("no Host on HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400, True),
    Case("two Hosts", _get(headers=b"Host: a\r\nHost: b\r\n"), 400, True),
    Case("Host with a space", _get(headers=b"Host: a b\r\n"), 400, True),
    Case("Host with a slash", _get(headers=b"Host: a/b\r\n"), 400, True),
    Case("no Host on HTTP/1.0", b"GET / HTTP/1.0\r\n\r\n", 200, True, {"path": "/"}),
    Case("IPv6 Host", _get(headers=b"Host: [::1]:8080\r\n"), 200, False,
         {"headers": {"HTTP_HOST": "[::1]:8080"}}),
    # -- 11. request line
    Case("HTTP/1.2", _get(version=b"HTTP/1.2"), 505, True, policy=True),
    Case("HTTP/2.0", _get(version=b"HTTP/2.0"), 505, True),
    Case("HTTP/1.10", _get(version=b"HTTP/1.10"), 400, True),
    Case("lowercase version", _get(version=b"http/1.1"), 400, True),
    Case("method not a token", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case("method with a NUL", b"GE\x00T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case("double space", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case("tab as separator", b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case("space in the target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case("control byte in the target", b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case("DEL in the target", b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case("obs-text in the target", b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case("trailing space", b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, True),
    Case("no version", b"GET /\r\nHost: x\r\n\r\n", 400, True),
    Case("bare CR in the request line", b"GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case("custom token method", b"PURGE /x HTTP/1.1\r\nHost: x\r\n\r\n", 200, False,
         {"method": "PURGE", "path": "/x"}),
    Case("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 200, False,
         {"method": "OPTIONS", "path": "*"}),
]

# Requests sent in two parts: the head, a pause, then the rest, or nothing.
SLOW_BODY = _post(b"Content-Length: 10\r\n", b"hello")  # 5 of the 10 bytes, then silence
