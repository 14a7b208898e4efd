"""The C head splitter agrees with the Python parser it speeds up, input by input.

``_speedups.split_request_head`` takes the usual request heads (the request
line and the field lines) in one call; anything else it leaves to
``http11._split_head``, which names the error. So for every head:

- the Python parser accepts it: the C one gives exactly the same result
  (no usual head takes the slow path, and nothing parses differently);
- the Python parser refuses it: the C one steps aside (None), and the head
  is refused with the Python parser's error. It never accepts what the
  Python parser refuses: that would be a head a front proxy reads one way
  and this server another.

Checked on the server's edge cases, on hand-picked near misses, and on
heads built by hypothesis from the bytes that matter (CR, LF, SP, HTAB,
colon, NUL, DEL, obs-text, token characters). Every test runs a fixed set
of examples (derandomize), like the other property tests.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.http_cases import CASES
from wsocket.protocol import http11
from wsocket.protocol.http11 import HTTPError, parse_head

split_request_head = http11.split_request_head
pytestmark = pytest.mark.skipif(split_request_head is None,
                                reason="the C accelerator is not in use (see test_speedups)")

SETTINGS = settings(
    max_examples=3000, deadline=None, derandomize=True, database=None, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_agree(head):
    try:
        expected = http11._split_head(head)
    except HTTPError:
        assert split_request_head(head) is None, head
        return
    assert split_request_head(head) == expected, head
    for name, value in split_request_head(head)[3]:
        assert type(name) is str and type(value) is str


def test_the_server_edge_cases_split_alike():
    for case in CASES:
        head, found, _ = case.raw.partition(b"\r\n\r\n")
        if found:
            assert_agree(head)


NEAR_MISSES = [
    b"GET / HTTP/1.1",
    b"GET / HTTP/1.0\r\nHost: x",
    b"GET / HTTP/1.1\r\nHost: x\r\n",  # a trailing CRLF: an empty field line
    b"GET / HTTP/1.1\r\n\r\nHost: x",
    b"GET / HTTP/1.2\r\nHost: x",
    b"GET / HTTP/2.0\r\nHost: x",
    b"GET / HTTP/1.11\r\nHost: x",
    b"GET / http/1.1\r\nHost: x",
    b"GET  / HTTP/1.1\r\nHost: x",
    b"GET / HTTP/1.1 \r\nHost: x",
    b" GET / HTTP/1.1\r\nHost: x",
    b"GET /\x7f HTTP/1.1\r\nHost: x",
    b"GET /\xe9 HTTP/1.1\r\nHost: x",
    b"G(T / HTTP/1.1\r\nHost: x",
    b"GET\t/ HTTP/1.1\r\nHost: x",
    b"GET / HTTP/1.1\rHost: x",
    b"GET / HTTP/1.1\nHost: x",
    b"GET / HTTP/1.1\r\nHost : x",
    b"GET / HTTP/1.1\r\n Host: x",
    b"GET / HTTP/1.1\r\nHost x",
    b"GET / HTTP/1.1\r\n: x",
    b"GET / HTTP/1.1\r\nHost: x\ry",
    b"GET / HTTP/1.1\r\nHost: x\ny",
    b"GET / HTTP/1.1\r\nHost: x\r\r\nA: b",
    b"GET / HTTP/1.1\r\nHost: x\x00",
    b"GET / HTTP/1.1\r\nHost: x\x7f",
    b"GET / HTTP/1.1\r\nHost: x\x1f",
    b"GET / HTTP/1.1\r\nH\xe9st: x",
    b"GET / HTTP/1.1\r\nHost: \t x \t ",
    b"GET / HTTP/1.1\r\nHost:x\r\nX-Empty:\r\nX-Spaces:   \r\nX-Colon: a:b:c",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xe9 \xff",
    b"GET /a?b=c&d HTTP/1.1\r\nHost: x\r\nHost: y",
    b"OPTIONS * HTTP/1.1\r\nHost: x",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443",
    b"GET http://example.com/ HTTP/1.1\r\nHost: x",
    b"",
    b"\r\n",
    b"GET",
    b"GET /",
    b"GET / ",
    b"GET / HTTP/1.",
]


@pytest.mark.parametrize("head", NEAR_MISSES)
def test_near_misses_split_alike(head):
    assert_agree(head)


def test_what_the_c_splitter_takes_parses_in_full():
    # The whole parse, not only the split: a usual upgrade request.
    head = (b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13")
    assert split_request_head(head) is not None
    request = parse_head(head)
    assert (request.method, request.path, request.query, request.host) == \
        ("GET", "/chat", "room=1", "example.com:8080")
    assert request.headers[1] == ("Upgrade", "websocket")
    assert request.keep_alive and request.version == "HTTP/1.1"


_TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VISIBLE = "".join(map(chr, range(0x21, 0x7f)))
_token = st.text(_TCHARS, min_size=1, max_size=8)
_ODD = st.sampled_from(["\r", "\n", "\r\n", " ", "\t", ":", "\x00", "\x7f", "\x1f", "\xe9",
                        "\xff", "", "HTTP/1.1"])


@st.composite
def _heads(draw):
    # Half the heads are well formed throughout; in the others each part
    # is odd one time in four: heads that just miss, in every place.
    broken = draw(st.booleans())

    def _mostly(valid, odd):
        return st.one_of(valid, valid, valid, odd) if broken else valid

    method = draw(_mostly(st.sampled_from(["GET", "POST", "OPTIONS"]) | _token,
                          st.sampled_from(["G(T", "", "G\xe9T"])))
    target = draw(_mostly(st.text(_VISIBLE, min_size=1, max_size=12),
                          st.sampled_from(["", "/ /", "/\x7f", "/\xe9", "/\r"])))
    version = draw(_mostly(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
                           st.sampled_from(["HTTP/1.2", "HTTP/2.0", "http/1.1", "HTTP/1.11", ""])))
    first, second = draw(_mostly(st.just((" ", " ")),
                                 st.sampled_from([("  ", " "), ("\t", " "), (" ", "  ")])))
    lines = [method + first + target + second + version]
    for _ in range(draw(st.integers(0, 5))):
        name = draw(_mostly(_token, st.sampled_from(["", "Ho st", " Host", "H\xe9"])))
        colon = draw(_mostly(st.just(":"), st.sampled_from([" :", "", "\t:"])))
        value = draw(_mostly(st.text(_VISIBLE + " \t\xe9\xff", max_size=12),
                             st.lists(_ODD | _token, max_size=4).map("".join)))
        lines.append(name + colon + value)
    head = "\r\n".join(lines)
    if broken and draw(st.booleans()):  # a stray byte anywhere
        position = draw(st.integers(0, len(head)))
        head = head[:position] + draw(_ODD) + head[position:]
    return head.encode("latin-1")


@SETTINGS
@given(_heads())
def test_generated_heads_split_alike(head):
    assert_agree(head)


@SETTINGS
@given(st.binary(max_size=80))
def test_arbitrary_bytes_split_alike(data):
    assert_agree(b"GET / HTTP/1.1\r\nHost: x\r\n" + data)
    assert_agree(data)
