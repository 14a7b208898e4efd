"""wsocket's request parser against h11 (python-hyper's strict HTTP/1.1 parser) as the oracle.

Hypothesis builds requests from parts (methods, targets, versions, header
names and values of every byte 0-255, Content-Length and
Transfer-Encoding combinations, chunk framing), joins them with mutated
line endings and whitespace, and may flip, drop or insert a byte anywhere.
Both parsers get the same bytes, then the end of the input. Wherever h11
refuses the request head or its body framing, wsocket refuses too;
wherever both accept, they agree on method, target, headers and body.

wsocket's side is ``wsocket.protocol.http11``, driven as the server drives
it: leading empty lines skipped (RFC 9112 2.2, which h11 refuses: the
comparison skips them for both), the head up to CRLFCRLF, then the body by
its framing; a message cut by the end of the input is refused. The
deliberate differences (where wsocket refuses what h11 accepts) are in
the Security page (docs/security.md). Last, 150 of the generated requests go to
``python -m wsocket`` itself: its app sees what the parser reads (method,
target, body), or the server refuses (4xx/5xx and close) where the parser
does, and its log shows no error.
"""

import json
import socket
from typing import NamedTuple, Optional

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests.netutil import Reader, open_connection
from tests.serverproc import python, start_server
from wsocket.protocol.http11 import ChunkedDecoder, HTTPError, find_head_end, parse_head

LIMIT = 65536


class Accepted(NamedTuple):
    method: bytes
    target: bytes
    headers: list  # [(lowercase name, value)] but Content-Length and Transfer-Encoding
    body: bytes


FRAMING = (b"content-length", b"transfer-encoding")


def _skip_empty_lines(raw: bytes) -> bytes:
    while raw[:2] == b"\r\n":
        raw = raw[2:]
    return raw


def wsocket_outcome(raw: bytes) -> Optional[Accepted]:
    """What wsocket makes of ``raw`` followed by the end of input: None when it refuses."""
    buffer = bytearray(_skip_empty_lines(raw))
    try:
        end = find_head_end(buffer, LIMIT)
        if end < 0:
            return None
        head = parse_head(bytes(buffer[:end]))
        del buffer[:end + 4]
        if head.chunked:
            decoder, body = ChunkedDecoder(LIMIT), bytearray()
            while not decoder.done:
                data = decoder.decode(buffer, 1 << 20)
                if data is None:
                    return None
                body += data
        elif head.content_length:
            if len(buffer) < head.content_length:
                return None
            body = buffer[:head.content_length]
        else:
            body = b""
    except HTTPError:
        return None
    headers = [(name.lower().encode("ascii"), value.encode("latin-1"))
               for name, value in head.headers if name.lower().encode() not in FRAMING]
    return Accepted(head.method.encode(), head.target.encode(), headers, bytes(body))


def h11_outcome(raw: bytes) -> Optional[Accepted]:
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(_skip_empty_lines(raw))
    connection.receive_data(b"")
    request, body = None, bytearray()
    try:
        while True:
            event = connection.next_event()
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # NEED_DATA or ConnectionClosed: cut by the end of input
                return None
    except h11.RemoteProtocolError:
        return None
    headers = [(name, value) for name, value in request.headers if name not in FRAMING]
    return Accepted(request.method, request.target, headers, bytes(body))


# -- generating requests ---------------------------------------------------------------
# Mostly valid parts, so that both parsers accept often enough to compare what
# they read; each part is sometimes a wrong one, or any bytes.

def mostly(valid, *wrong):
    """``valid`` nine times in ten, else one of ``wrong``."""
    return st.integers(0, 9).flatmap(lambda roll: valid if roll else st.one_of(*wrong))


any_byte = st.integers(0, 255).map(lambda value: bytes([value]))
some_bytes = st.lists(any_byte, max_size=6).map(b"".join)
line_end = mostly(st.just(b"\r\n"),
                  st.sampled_from([b"\n", b"\r", b"\r\r\n", b"\n\r", b" \r\n"]))
space = mostly(st.just(b" "), st.sampled_from([b"  ", b"\t", b"", b"\x0b", b"\x00"]))
method = mostly(st.sampled_from([b"GET", b"POST", b"PUT", b"PURGE"]),
                st.sampled_from([b"get", b"G(T", b"G\xc9T"]), some_bytes)
target = mostly(
    st.one_of(st.sampled_from([b"/", b"/a?b=c", b"http://h/x", b"https://h:1", b"//x", b"/%41"]),
              st.text("abc/?=&%:@!$'()*+,;", max_size=8).map(lambda text: b"/" + text.encode())),
    st.sampled_from([b"*", b"/a b", b"ftp://x/", b"/\x7f", b"/\xe9", b"x"]),
    st.builds(lambda a, b: b"/" + a + b, some_bytes, some_bytes))
version = mostly(st.sampled_from([b"HTTP/1.1"] * 3 + [b"HTTP/1.0"]),
                 st.sampled_from([b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.10", b"HTTP/1",
                                  b"HTTP/1.1 "]))
header_name = mostly(
    st.one_of(st.sampled_from([b"X-A", b"Connection", b"Accept", b"Expect", b"Cookie"]),
              st.text("abcXYZ-!#$%&'*+.^_`|~09", min_size=1, max_size=8).map(str.encode)),
    st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"content-length",
                     b"TRANSFER-ENCODING", b"X_A", b"X A", b"X(A)", b""]),
    some_bytes.filter(bool),
    st.builds(lambda a, b: b"X" + a + b, any_byte, some_bytes))
header_value = mostly(
    st.one_of(st.sampled_from([b"x", b"", b"a\tb", b"100-continue", b"close", b"caf\xe9"]),
              st.binary(max_size=8).map(lambda data: bytes(byte | 0x21 for byte in data)
                                        .replace(b"\x7f", b"~"))),
    st.sampled_from([b" 5 ", b"5, 5", b"5, 6", b"+5", b"-1", b"0x5", b"\xb2", b"chunked",
                     b"CHUNKED", b"gzip, chunked", b"chunked, gzip", b" ", b"chunked, chunked",
                     b"identity", b"99999999999999999999"]),
    some_bytes, st.builds(lambda a, b, c: a + b + c, some_bytes, any_byte, some_bytes))
separator = mostly(st.sampled_from([b": ", b":", b":  "]),
                   st.sampled_from([b" : ", b":\t", b"\t:", b"::", b""]))
header = st.builds(lambda name, sep, value, end: name + sep + value + end,
                   header_name, separator, header_value, line_end)
chunk_size_mistake = st.sampled_from([
    b"-1", b"+5", b"0x5", b"0_5", b" 5", b"5 ", b"", b"00000000000000005", b"5;", b"5;a=\x01",
    b"5;=x", b"5;a=\"q", b"ffffffffffffffffff"])
chunk_extension = mostly(st.just(b""), st.sampled_from([b";a=b", b" ; a = b", b';a="q \\" r"',
                                                        b";a", b";a=b;c"]))


@st.composite
def chunked_body(draw):
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.binary(max_size=12))
        size_text = draw(mostly(st.sampled_from([b"%x" % len(data), b"%X" % len(data),
                                                 b"00%x" % len(data)]), chunk_size_mistake,
                                st.integers(0, 40).map(lambda size: b"%x" % size)))
        parts.append(size_text + draw(chunk_extension) + draw(line_end) + data
                     + draw(mostly(st.just(b"\r\n"), st.sampled_from([b"\n", b"", b"XX",
                                                                      b"\r"]))))
    parts.append(draw(mostly(st.just(b"0"), st.sampled_from([b"000", b"0;a=b", b"", b"00 "])))
                 + draw(line_end))
    if draw(st.integers(0, 3)) == 0:
        parts.append(draw(header))
    parts.append(draw(line_end))
    return b"".join(parts)


@st.composite
def requests(draw):
    request_line = (draw(method) + draw(space) + draw(target) + draw(space) + draw(version)
                    + draw(line_end))
    headers = draw(st.lists(header, max_size=4))
    framing = draw(st.sampled_from(["none", "length", "chunked", "both", "any"]))
    if framing in ("length", "both"):
        body = draw(st.binary(max_size=12))
        length = draw(mostly(st.just(b"%d" % len(body)), st.sampled_from(
            [b"%d, %d" % (len(body), len(body)), b"%d" % (len(body) + 1), b"0%d" % len(body),
             b"+%d" % len(body), b" %d " % len(body)])))
        headers.append(b"Content-Length: " + length + draw(line_end))
    if framing in ("chunked", "both"):
        body = draw(chunked_body())
        coding = draw(mostly(st.just(b"chunked"), st.sampled_from(
            [b"Chunked", b"gzip, chunked", b"chunked, gzip", b"", b"chunked, chunked",
             b"chunked;a=b", b" chunked ", b",chunked"])))
        headers.append(b"Transfer-Encoding: " + coding + draw(line_end))
    if framing == "none":
        body = b""
    elif framing == "any":
        body = draw(st.binary(max_size=12))
    if draw(mostly(st.just(True), st.just(False))):
        headers.append(b"Host: " + draw(mostly(st.just(b"h"), st.sampled_from(
            [b"", b"a b", b"h:80", b"[::1]", b"a/b", b"h\x00"]))) + draw(line_end))
    if draw(st.integers(0, 19)) == 0:
        headers.append(draw(header_value).join([b"Host: ", b"\r\n"]))
    headers = draw(st.permutations(headers))
    raw = request_line + b"".join(headers) + draw(line_end) + body
    mutation = draw(st.sampled_from(["none"] * 6 + ["flip", "drop", "insert"]))
    if mutation != "none" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        byte = draw(any_byte)
        raw = {"flip": raw[:at] + byte + raw[at + 1:], "drop": raw[:at] + raw[at + 1:],
               "insert": raw[:at] + byte + raw[at:]}[mutation]
    return raw


def check(raw: bytes) -> None:
    ours, theirs = wsocket_outcome(raw), h11_outcome(raw)
    if theirs is None:
        assert ours is None, "h11 refuses what wsocket accepts: %r -> %r" % (raw, ours)
    elif ours is not None:
        assert ours == theirs, "they disagree on %r:\nwsocket %r\nh11     %r" % (raw, ours,
                                                                                theirs)


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(requests())
@example(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
@example(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n")
@example(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello")
def test_wsocket_refuses_whatever_h11_refuses_and_agrees_on_the_rest(raw):
    check(raw)


def test_the_generator_reaches_both_sides():
    """The property above is not vacuous: among fixed requests both accept some, h11 refuses some."""
    accepted = h11_outcome(b"POST /a?b HTTP/1.1\r\nHost: h\r\nX-A:  caf\xe9 \r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n")
    assert accepted == wsocket_outcome(
        b"POST /a?b HTTP/1.1\r\nHost: h\r\nX-A:  caf\xe9 \r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n")
    assert accepted.body == b"abc" and (b"x-a", b"caf\xe9") in accepted.headers
    assert h11_outcome(b"GET / HTTP/1.1\r\n\r\n") is None  # no Host


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\nHost: h\n\n",  # bare LF line ends
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",  # obs-fold
    b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",  # 505
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
    b"0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET ftp://x/ HTTP/1.1\r\nHost: h\r\n\r\n",
])
def test_deliberate_differences_wsocket_is_stricter(raw):
    """README lists these: h11 accepts them, wsocket refuses."""
    assert h11_outcome(raw) is not None
    assert wsocket_outcome(raw) is None


# -- the server reads as its parser does ------------------------------------------------

@pytest.fixture(scope="module")
def wsocket_server(tmp_path_factory):
    server = start_server("wsocket", python(
        "-m", "wsocket", "tests.http_edge_app:app", "--port", "{port}", "--body-timeout", "5"),
        tmp_path_factory.mktemp("h11") / "wsocket.log")
    try:
        yield server
    finally:
        server.stop()


def server_outcome(port: int, raw: bytes):
    """(method, target, body) the app saw, or None when the server refused (or said nothing)."""
    sock = open_connection("127.0.0.1", port)
    with sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # the end of input, as the parsers get it
        try:
            response = Reader(sock).read_response()
        except (EOFError, ConnectionError):
            return None
    if response.status >= 400:
        assert response.header("Connection") == "close"
        return None
    assert response.status == 200, response
    seen = json.loads(response.body)
    return seen["method"].encode(), seen["target"].encode("latin-1"), seen["body"].encode(
        "latin-1")


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=requests())
def test_the_server_reads_requests_as_its_parser(wsocket_server, raw):
    """Requests sent to ``python -m wsocket``: the app sees what the parser reads, or none."""
    parsed = wsocket_outcome(raw)
    served = server_outcome(wsocket_server.port, raw)
    if parsed is None:
        assert served is None, "the parser refuses, the server ran the app: %r" % raw
    else:
        assert served == (parsed.method, parsed.target, parsed.body), raw


def test_generated_requests_logged_no_error(wsocket_server):
    """Runs after the one above: none of its requests left an ERROR line or a traceback."""
    assert server_outcome(wsocket_server.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") is not None
    wsocket_server.assert_no_errors()
