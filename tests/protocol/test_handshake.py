"""The opening handshake (RFC 6455 section 4): server checks, client request and checks."""

import base64
import binascii
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsocket.errors import HandshakeError
from wsocket.protocol.deflate import DeflateParams
from wsocket.protocol.handshake import (
    GUID, SUPPORTED_VERSIONS, accept_key, check_extra_headers, check_response,
    choose_subprotocol, client_request, headers_from_environ, is_upgrade_request, make_key,
    server_handshake, split_header,
)

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
VERSIONS_HEADER = [("Sec-WebSocket-Version", "13, 8, 7")]


def _request(**changes):
    headers = {
        "host": "server.example.com",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": RFC_KEY,
        "sec-websocket-version": "13",
        "origin": "http://example.com",
    }
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


def _refused(headers, **kwargs):
    with pytest.raises(HandshakeError) as raised:
        server_handshake(headers, **kwargs)
    return raised.value


# -- the server side ----------------------------------------------------------------------

def test_rfc_example_key():
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_valid_request_gets_exact_101_headers():
    handshake = server_handshake(_request())
    assert handshake.headers == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", RFC_ACCEPT),
    ]
    assert (handshake.key, handshake.version, handshake.subprotocol, handshake.deflate,
            handshake.origin) == (RFC_KEY, 13, None, None, "http://example.com")


@pytest.mark.parametrize("changes", [
    {"upgrade": "WebSocket"},
    {"upgrade": "h2c, websocket"},
    {"connection": "keep-alive, Upgrade"},
    {"connection": "upgrade"},
    {"connection": "Upgrade,keep-alive"},
    {"sec_websocket_key": "  " + RFC_KEY + " "},
    {"sec_websocket_version": " 13 "},
    {"origin": None},
])
def test_valid_variations_are_accepted(changes):
    assert server_handshake(_request(**changes)).headers[2] == ("Sec-WebSocket-Accept",
                                                                RFC_ACCEPT)


@pytest.mark.parametrize("version", [7, 8, 13])
def test_supported_versions(version):
    assert SUPPORTED_VERSIONS == (13, 8, 7)
    assert server_handshake(_request(sec_websocket_version=str(version))).version == version


def test_draft_versions_read_sec_websocket_origin():
    headers = _request(sec_websocket_version="8", origin=None,
                       sec_websocket_origin="http://draft.example")
    assert server_handshake(headers).origin == "http://draft.example"


@pytest.mark.parametrize("kwargs, status, message", [
    ({"method": "POST"}, 400, "WebSocket upgrade requires GET, not POST"),
    ({"method": "HEAD"}, 400, "WebSocket upgrade requires GET, not HEAD"),
    ({"http_version": "HTTP/1.0"}, 400, "WebSocket upgrade requires HTTP/1.1, not HTTP/1.0"),
], ids=["post", "head", "http-1.0"])
def test_bad_request_line(kwargs, status, message):
    error = _refused(_request(), **kwargs)
    assert (error.status, str(error), error.headers) == (status, message, [])


@pytest.mark.parametrize("changes, status, message, headers", [
    ({"upgrade": None}, 400, "missing header: Upgrade: websocket", []),
    ({"upgrade": "h2c"}, 400, "missing header: Upgrade: websocket", []),
    ({"connection": None}, 400, "missing header: Connection: Upgrade", []),
    ({"connection": "keep-alive"}, 400, "missing header: Connection: Upgrade", []),
    ({"connection": "upgrades"}, 400, "missing header: Connection: Upgrade", []),
    ({"sec_websocket_version": None}, 426, "missing header: Sec-WebSocket-Version",
     VERSIONS_HEADER),
    ({"sec_websocket_version": "12"}, 426, "unsupported Sec-WebSocket-Version: 12",
     VERSIONS_HEADER),
    ({"sec_websocket_version": "14"}, 426, "unsupported Sec-WebSocket-Version: 14",
     VERSIONS_HEADER),
    ({"sec_websocket_version": "abc"}, 426, "unsupported Sec-WebSocket-Version: abc",
     VERSIONS_HEADER),
    ({"sec_websocket_version": ""}, 426, "unsupported Sec-WebSocket-Version: ", VERSIONS_HEADER),
    ({"sec_websocket_version": "13, 8"}, 426, "unsupported Sec-WebSocket-Version: 13, 8",
     VERSIONS_HEADER),
    ({"sec_websocket_version": "-13"}, 426, "unsupported Sec-WebSocket-Version: -13",
     VERSIONS_HEADER),
    # "\xb2" (superscript two) arrives through a latin-1 WSGI environ; str.isdigit() says yes.
    ({"sec_websocket_version": "\xb2"}, 426, "unsupported Sec-WebSocket-Version: \xb2",
     VERSIONS_HEADER),
    ({"sec_websocket_key": None}, 400, "missing header: Sec-WebSocket-Key", []),
    ({"sec_websocket_key": "not base64!!"}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": base64.b64encode(b"x" * 15).decode()}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": base64.b64encode(b"x" * 17).decode()}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": ""}, 400, "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": RFC_KEY[:-2]}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": "dGhlIHNhbXBsZSBub25jZQ"}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": "\xe9" * 24}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    # the URL-safe alphabet is another one; padding is all or nothing, and only at the end
    ({"sec_websocket_key": "dGhlIHNhbXBsZSBub25jZQ-_"}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": "-GhlIHNhbXBsZSBub25jZQ=="}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": "dGhlIHNhbXBsZSBub25jZQ="}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": "dGhlIHNhbXBsZSBub25jZ=="}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": "dGhlIHNhbXBsZSBub25=ZQ=="}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": RFC_KEY + "=="}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
    ({"sec_websocket_key": "dGhlIHNhbX BsZSBub25jZQ=="}, 400,
     "invalid Sec-WebSocket-Key: not base64 of 16 bytes", []),
])
def test_bad_request_headers(changes, status, message, headers):
    error = _refused(_request(**changes))
    assert (error.status, str(error), error.headers) == (status, message, headers)


@pytest.mark.parametrize("origin", ["http://example.com", "https://other.example"])
def test_allowed_origin_passes(origin):
    allowed = ["http://example.com", "https://other.example"]
    assert server_handshake(_request(origin=origin), allowed_origins=allowed).origin == origin


@pytest.mark.parametrize("origin, message", [
    ("http://evil.example", "origin not allowed: http://evil.example"),
    ("http://example.com:8080", "origin not allowed: http://example.com:8080"),
    (None, "origin not allowed: None"),
])
def test_origin_not_allowed_gets_403(origin, message):
    error = _refused(_request(origin=origin), allowed_origins=["http://example.com"])
    assert (error.status, str(error), error.headers) == (403, message, [])


def test_no_allowed_origins_means_every_origin():
    assert server_handshake(_request(origin="http://anything")).origin == "http://anything"


@pytest.mark.parametrize("offered, supported, chosen", [
    ("chat, superchat", ["superchat", "chat"], "superchat"),
    ("chat, superchat", ["chat", "superchat"], "chat"),
    ("superchat,chat", ["chat", "superchat"], "chat"),
    ("chat", ["v2.chat", "chat"], "chat"),
    ("a, b", ["c"], None),
    ("a, b", None, None),
    ("a, b", [], None),
    (None, ["chat"], None),
])
def test_subprotocol_is_chosen_by_the_servers_order(offered, supported, chosen):
    handshake = server_handshake(_request(sec_websocket_protocol=offered), protocols=supported)
    assert handshake.subprotocol == chosen
    protocol_headers = [h for h in handshake.headers if h[0] == "Sec-WebSocket-Protocol"]
    assert protocol_headers == ([("Sec-WebSocket-Protocol", chosen)] if chosen else [])


def test_choose_subprotocol_accepts_a_list():
    assert choose_subprotocol(["b", "a"], ["a", "b"]) == "a"
    assert choose_subprotocol(None, ["a"]) is None


def test_compression_is_negotiated_and_answered():
    headers = _request(sec_websocket_extensions="permessage-deflate; client_max_window_bits")
    handshake = server_handshake(headers, protocols=["chat"])
    assert handshake.deflate == DeflateParams()
    assert handshake.headers[-1] == ("Sec-WebSocket-Extensions", "permessage-deflate")


def test_compression_off_ignores_the_offer():
    headers = _request(sec_websocket_extensions="permessage-deflate")
    handshake = server_handshake(headers, compression=False)
    assert handshake.deflate is None
    assert [h[0] for h in handshake.headers] == ["Upgrade", "Connection", "Sec-WebSocket-Accept"]


def test_unacceptable_extensions_do_not_refuse_the_upgrade():
    headers = _request(sec_websocket_extensions="x-unknown, permessage-deflate; bogus")
    assert server_handshake(headers).deflate is None


def test_headers_from_environ():
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/chat",
        "HTTP_HOST": "server.example.com",
        "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "Upgrade",
        "HTTP_SEC_WEBSOCKET_KEY": RFC_KEY,
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        "HTTP_SEC_WEBSOCKET_PROTOCOL": "chat",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "",
        "wsgi.version": (1, 0),
    }
    assert headers_from_environ(environ) == {
        "host": "server.example.com",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": RFC_KEY,
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "chat",
        "content-type": "text/plain",
    }
    assert server_handshake(headers_from_environ(environ)).headers[2][1] == RFC_ACCEPT


def test_headers_from_environ_names_keys_never_seen_and_then_remembered():
    # A name no environ had before (the first time, named one key at a time),
    # then the same environ again (every key known: named in one pass).
    name = "HTTP_X_NEVER_SEEN_" + uuid.uuid4().hex.upper()
    environ = {"wsgi.input": object(), name: "1", "HTTP_HOST": "h", "SERVER_NAME": "s",
               "HTTP_": "no name"}
    expected = {name[5:].replace("_", "-").lower(): "1", "host": "h"}  # ("HTTP_" names none)
    assert headers_from_environ(environ) == expected
    assert headers_from_environ(environ) == expected


def test_headers_from_environ_without_content_type():
    assert headers_from_environ({"HTTP_X_A": "1", "CONTENT_TYPE": ""}) == {"x-a": "1"}


@pytest.mark.parametrize("headers, expected", [
    ({"upgrade": "websocket"}, True),
    ({"upgrade": "WEBSOCKET"}, True),
    ({"upgrade": "h2c, websocket"}, True),
    ({"upgrade": "h2c"}, False),
    ({}, False),
])
def test_is_upgrade_request(headers, expected):
    assert is_upgrade_request(headers) is expected


def test_split_header():
    assert split_header(" a, b ,,c ") == ["a", "b", "c"]
    assert split_header("") == [] and split_header(None) == []


# -- the client side ------------------------------------------------------------------------

def test_make_key_is_base64_of_16_random_bytes():
    keys = {make_key() for _ in range(5)}
    assert len(keys) == 5
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == 16


def test_client_request_exact_bytes():
    assert client_request("example.com:8080", "/chat?x=1", RFC_KEY) == (
        b"GET /chat?x=1 HTTP/1.1\r\n"
        b"Host: example.com:8080\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        b"\r\n")


def test_client_request_with_everything():
    assert client_request("h", "/", RFC_KEY, protocols=["chat", "superchat"],
                          origin="http://h", compression=False,
                          extra_headers=[("X-Token", "abc")]) == (
        b"GET / HTTP/1.1\r\n"
        b"Host: h\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://h\r\n"
        b"Sec-WebSocket-Protocol: chat, superchat\r\n"
        b"X-Token: abc\r\n"
        b"\r\n")


def _response(**changes):
    headers = {"upgrade": "websocket", "connection": "Upgrade",
               "sec-websocket-accept": RFC_ACCEPT}
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


def test_check_response_valid():
    assert check_response(101, _response(), RFC_KEY) == (None, None)


def test_check_response_with_subprotocol_and_deflate():
    headers = _response(sec_websocket_protocol="chat",
                        sec_websocket_extensions="permessage-deflate; server_no_context_takeover")
    assert check_response(101, headers, RFC_KEY, protocols=["chat"]) == (
        "chat", DeflateParams(server_no_context_takeover=True))


def test_the_server_answer_is_accepted_by_the_client_check():
    request = {name.lower(): value for name, value in (
        line.split(": ", 1) for line in
        client_request("h", "/", RFC_KEY, protocols=["chat"]).decode().split("\r\n")[1:-2])}
    handshake = server_handshake(request, protocols=["chat"])
    answer = {name.lower(): value for name, value in handshake.headers}
    assert check_response(101, answer, RFC_KEY, protocols=["chat"]) == ("chat", DeflateParams())


@pytest.mark.parametrize("status, changes, kwargs, message", [
    (200, {}, {}, "server answered 200 instead of 101 Switching Protocols"),
    (400, {}, {}, "server answered 400 instead of 101 Switching Protocols"),
    (101, {"sec_websocket_accept": "wrong"}, {}, "server sent a wrong Sec-WebSocket-Accept"),
    (101, {"sec_websocket_accept": None}, {}, "server sent a wrong Sec-WebSocket-Accept"),
    (101, {"upgrade": None}, {}, "server's 101 lacks Upgrade: websocket"),
    (101, {"connection": "close"}, {}, "server's 101 lacks Connection: Upgrade"),
    (101, {"sec_websocket_protocol": "chat"}, {},
     "server chose a subprotocol that was not offered: chat"),
    (101, {"sec_websocket_protocol": "other"}, {"protocols": ["chat"]},
     "server chose a subprotocol that was not offered: other"),
    (101, {"sec_websocket_extensions": "permessage-deflate"}, {"compression": False},
     "server accepted an extension that was not offered: permessage-deflate"),
    (101, {"sec_websocket_extensions": "x-custom"}, {},
     "server accepted an extension that was not offered: x-custom"),
    (101, {"sec_websocket_extensions": "permessage-deflate; client_max_window_bits"}, {},
     "server answered client_max_window_bits without a value"),
])
def test_check_response_errors(status, changes, kwargs, message):
    headers = _response(**changes)
    with pytest.raises(HandshakeError) as raised:
        check_response(status, headers, RFC_KEY, **kwargs)
    assert str(raised.value) == message
    assert raised.value.status == status
    assert raised.value.headers == list(headers.items())


# -- a body, and what accept() may add to the 101 -------------------------------------------

@pytest.mark.parametrize("changes, what", [
    ({"content_length": "10"}, "Content-Length"),
    ({"content_length": "x"}, "Content-Length"),
    ({"transfer_encoding": "chunked"}, "Transfer-Encoding"),
    ({"transfer_encoding": ""}, "Transfer-Encoding"),
])
def test_an_upgrade_request_with_a_body_is_refused(changes, what):
    error = _refused(_request(**changes))
    assert (error.status, str(error)) == (
        400, "a WebSocket upgrade request has no body (it has %s)" % what)


@pytest.mark.parametrize("length", ["0", "00", ""])
def test_a_zero_content_length_is_no_body(length):
    assert server_handshake(_request(content_length=length)).version == 13


def test_the_environs_content_length_is_a_header():
    environ = {"CONTENT_LENGTH": "5", "HTTP_UPGRADE": "websocket"}
    assert headers_from_environ(environ) == {"content-length": "5", "upgrade": "websocket"}


@given(st.text(alphabet="AZaz09+/=-_ \t\xe9.", max_size=30)
       | st.binary(min_size=14, max_size=18).map(lambda raw: base64.b64encode(raw).decode()))
@settings(max_examples=2000, deadline=None, derandomize=True, database=None)
def test_a_key_is_accepted_exactly_when_it_decodes_to_16_bytes(key):
    # The RFC's own test: strict base64 (the alphabet, its padding) of 16 bytes.
    try:
        decodes_to_16 = len(base64.b64decode(key.strip().encode("ascii"), validate=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        decodes_to_16 = False
    try:
        accepted = server_handshake(_request(sec_websocket_key=key)).key == key.strip()
    except HandshakeError as error:
        assert (error.status, str(error)) == (
            400, "invalid Sec-WebSocket-Key: not base64 of 16 bytes")
        accepted = False
    assert accepted == decodes_to_16


@pytest.mark.parametrize("key", [RFC_KEY, base64.b64encode(bytes(range(16))).decode(),
                                 base64.b64encode(b"\xff" * 16).decode()])
def test_the_usual_101_is_the_listed_headers(key):
    handshake = server_handshake(_request(sec_websocket_key=key))
    listed = "".join("%s: %s\r\n" % header for header in handshake.headers)
    assert handshake.response(None) == (
        "HTTP/1.1 101 Switching Protocols\r\n%s\r\n" % listed).encode("latin-1")
    assert handshake.response(None) == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n")


def test_the_101_with_a_chosen_subprotocol_and_extra_headers():
    handshake = server_handshake(_request(sec_websocket_protocol="chat, superchat"),
                                 protocols=["superchat", "chat"])
    assert handshake.subprotocol == "superchat" and handshake.offered == ("chat", "superchat")
    extra = check_extra_headers({"Set-Cookie": "a=1; HttpOnly"})
    assert handshake.response("chat", extra) == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + RFC_ACCEPT.encode() + b"\r\n"
        b"Sec-WebSocket-Protocol: chat\r\nSet-Cookie: a=1; HttpOnly\r\n\r\n")


@pytest.mark.parametrize("headers, error, message", [
    ([("Upgrade", "x")], ValueError, "the handshake sets Upgrade itself"),
    ([("CONNECTION", "x")], ValueError, "the handshake sets CONNECTION itself"),
    ([("Sec-WebSocket-Protocol", "x")], ValueError, "the handshake sets Sec-WebSocket-Protocol"),
    ([("sec-websocket-anything", "x")], ValueError, "the handshake sets sec-websocket-anything"),
    ([("X-A", "a\r\nSet-Cookie: b=1")], ValueError, "header X-A: the value holds a control"),
    ([("X-A", "a\nb")], ValueError, "header X-A: the value holds a control"),
    ([("X-A", "a\0")], ValueError, "header X-A: the value holds a control"),
    ([("X A", "1")], ValueError, "invalid header name 'X A'"),
    ([("X:A", "1")], ValueError, "invalid header name 'X:A'"),
    ([("", "1")], ValueError, "invalid header name ''"),
    ([("X-A", 1)], TypeError, "a header name and value are str"),
    ("Set-Cookie: a", TypeError, "headers are a list of (name, value) pairs or a dict"),
    ([("X-A",)], TypeError, "a header is a (name, value) pair"),
])
def test_extra_headers_that_the_101_cannot_take(headers, error, message):
    with pytest.raises(error) as raised:
        check_extra_headers(headers)
    assert str(raised.value).startswith(message)


def test_extra_headers_keep_tabs_and_order():
    assert check_extra_headers([("X-A", "a\tb"), ("Set-Cookie", "1")]) == [
        ("X-A", "a\tb"), ("Set-Cookie", "1")]
    assert check_extra_headers(None) == []
