"""Coverage-guided fuzzing (atheris, libFuzzer) of the HTTP/1.1 request parser.

    python fuzz/fuzz_http.py -max_total_time=30 [corpus folder] [libFuzzer options]

An input is one byte of settings, then the bytes a client sends on a
connection, read as wsocket's server reads them (``wsocket.protocol.http11``):
empty lines skipped, the head up to CRLFCRLF, then its body by its framing.

- byte 0: how the body is cut into the pieces it arrives in (0: whole).

Every input must pass these checks; anything else raised is a crash:

- the C head splitter (``_speedups.split_request_head``) gives exactly what
  the Python parser does, and steps aside (None) where that one refuses;
- the C environ fast path (``_speedups.request_environ``, given a key for
  every name in the head) never takes a head the Python parser refuses, and
  where it takes one, fills exactly the environ ``parse_head`` and
  ``server.add_request`` make, for a request without a body, with the same
  keep-alive;

- nothing escapes but ``HTTPError`` with 400, 413, 431, 501 or 505;
- a head the parser accepts has token method and names, a version it
  speaks, values without CR, LF or NUL, lines that match the grammar's
  FIELD_LINE, and framing by one of none,
  Content-Length or chunked;
- a chunked body decoded a piece at a time gives the same bytes, or the
  same refusal, as decoded whole, and while it waits for more the decoder
  leaves at most one chunk line (or the trailers) unconsumed: memory bounded;
- the values read back pass the response-header check (they could be echoed).
"""

import atheris

import _common

_common.use_source_tree()

import re

with atheris.instrument_imports(include=["wsocket"]):
    from wsocket import server
    from wsocket.protocol import http11
    from wsocket.protocol.http11 import (
        FIELD_LINE, ChunkedDecoder, HTTPError, InvalidResponse, check_response_header,
        find_head_end, is_token, parse_head,
    )

field_line = re.compile(FIELD_LINE)  # the grammar's rule, which the parser checks faster

HEAD_LIMIT = 4096
TRAILER_LIMIT = 1024
STATUSES = {400, 413, 431, 501, 505}


def _decode(body, piece):
    """(body bytes, error status or None) of a chunked body fed ``piece`` bytes at a time."""
    decoder = ChunkedDecoder(TRAILER_LIMIT)
    buffer, out = bytearray(), bytearray()
    pieces = [body[i:i + piece] for i in range(0, len(body), piece)] if piece else [body]
    try:
        for data in pieces:
            buffer += data
            while not decoder.done:
                chunk = decoder.decode(buffer, 1 << 16)
                if chunk is None:
                    held = len(buffer)
                    if held > max(decoder.max_line, TRAILER_LIMIT) + 2:
                        raise AssertionError("decoder waits with %d bytes unconsumed" % held)
                    break
                out += chunk
            if decoder.done:
                break
        return bytes(out), decoder.done, None
    except HTTPError as error:
        if error.status not in STATUSES:
            raise AssertionError("chunked body refused with %d" % error.status)
        return bytes(out), False, error.status


def _check_c_split(head):
    """The C head splitter gives what the Python one does, or steps aside where it refuses."""
    if http11.split_request_head is None:
        return
    fast = http11.split_request_head(head)
    try:
        slow = http11._split_head(head)
    except HTTPError:
        if fast is not None:
            raise AssertionError("the C splitter took a head Python refuses: %r" % fast) from None
        return
    if fast != slow:
        raise AssertionError("C split %r, Python split %r" % (fast, slow))


def _check_c_environ(head):
    """The C environ fast path fills what the Python path would, or steps aside."""
    if server.request_environ is None:
        return
    try:
        request = parse_head(head)
    except HTTPError:
        if server.request_environ(head, {}, dict(server._environ_keys)) is not None:
            raise AssertionError("the C environ took a head Python refuses") from None
        return
    # a key for every name (as the server has once it saw them), so the fast path runs
    keys = {name: server._environ_key(name) for name, _ in request.headers}
    fast = {}
    keep_alive = server.request_environ(head, fast, keys)
    if keep_alive is None:
        return
    if request.content_length is not None or request.chunked or request.expect_continue:
        raise AssertionError("the C environ took a request with a body or Expect")
    slow = {}
    server.add_request(slow, request)
    if (keep_alive, fast) != (request.keep_alive, slow):
        raise AssertionError("C environ %r (keep-alive %r), Python %r (keep-alive %r)"
                             % (fast, keep_alive, slow, request.keep_alive))


def test_one_input(data):
    if not data:
        return
    piece, stream = data[0], bytearray(data[1:])
    while stream[:2] == b"\r\n":
        del stream[:2]
    try:
        end = find_head_end(stream, HEAD_LIMIT)
        if end < 0:
            return
        _check_c_split(bytes(stream[:end]))
        _check_c_environ(bytes(stream[:end]))
        head = parse_head(bytes(stream[:end]))
    except HTTPError as error:
        if error.status not in STATUSES:
            raise AssertionError("head refused with %d" % error.status)
        return
    body = bytes(stream[end + 4:])
    if not is_token(head.method) or head.version not in ("HTTP/1.0", "HTTP/1.1"):
        raise AssertionError("accepted %r" % (head,))
    for name, value in head.headers:
        if not is_token(name) or any(c in value for c in "\r\n\0") \
                or field_line.fullmatch(("%s: %s" % (name, value)).encode("latin-1")) is None:
            raise AssertionError("accepted the header %r: %r" % (name, value))
        try:
            check_response_header(name, value)
        except InvalidResponse as error:
            if name.lower() != "content-length":  # a request's may be a list: "5, 5"
                raise AssertionError("a request header fails the response check: %s" % error)
    if head.chunked and head.content_length is not None:
        raise AssertionError("both chunked and a Content-Length")
    if head.chunked:
        whole, cut = _decode(body, 0), _decode(body, piece)
        if cut != whole:
            raise AssertionError("whole: %r; in pieces of %d: %r" % (whole, piece, cut))

def seeds():
    return [
        b"\x00GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
        b"\x03POST /upload?x=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;name=\"v a\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"\x01POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
        b"\x00GET http://example.com:8080/a%20b HTTP/1.1\r\nHost: other\r\n\r\n",
        b"\x02\r\nOPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n",
        b"\x07PUT /x HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    ]


if __name__ == "__main__":
    _common.fuzz("http", test_one_input, seeds())
