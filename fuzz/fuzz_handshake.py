"""Coverage-guided fuzzing (atheris, libFuzzer) of the opening handshake parsers.

    python fuzz/fuzz_handshake.py -max_total_time=30 [corpus folder] [libFuzzer options]

An input is one byte of settings, then an HTTP request head read as
Latin-1 (as WSGI servers do): a request line, then ``Name: value`` lines.

- byte 0: bits 0-1 the server's subprotocols (``PROTOCOLS``), bits 2-3 the
  allowed origins (``ORIGINS``), bit 4 compression, bits 5-7 the status the
  same headers get as a server's answer (``STATUSES``).

Every input must pass these checks; anything else raised is a crash:

- ``server_handshake()`` raises HandshakeError with 400, 403 or 426 (426
  with the versions header), or returns a handshake whose 101 headers
  ``check_response()`` accepts, with the same subprotocol and deflate;
- ``parse_extensions()`` raises only ValueError, ``negotiate_server()``
  nothing, and what it agrees reads back the same on both sides;
- the headers read as a server's answer: ``check_response()`` and
  ``accept_client_response()`` raise only HandshakeError.
"""


import atheris

import _common

_common.use_source_tree()

with atheris.instrument_imports(include=["wsocket"]):
    from wsocket.errors import HandshakeError
    from wsocket.protocol.deflate import (
        DeflateParams, accept_client_response, negotiate_server, parse_extensions,
    )
    from wsocket.protocol.handshake import (
        ServerHandshake, accept_key, check_response, server_handshake,
    )

PROTOCOLS = (None, [], ["chat"], ["superchat", "chat", "v2.json"])
ORIGINS = (None, [], ["http://example.com"], ["http://example.com", "null"])
STATUSES = (101, 101, 101, 101, 200, 400, 426, 503)
CLIENT_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # the key the answers are checked against
VERSIONS_HEADER = [("Sec-WebSocket-Version", "13, 8, 7")]


def parse_request(text):
    """(method, version, headers) of a request head; later headers replace earlier ones."""
    lines = text.split("\n")
    method, _, version = lines[0].rstrip("\r").partition(" ")
    version = version.rpartition(" ")[2]  # "GET /path HTTP/1.1": the last word
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.rstrip("\r").partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip(" \t")
    return method, version, headers


def _check_extensions(value):
    try:
        parsed = parse_extensions(value)
    except ValueError:
        parsed = None
    agreed = negotiate_server(value)
    if agreed is not None:
        if parsed is None or type(agreed) is not DeflateParams:
            raise AssertionError("negotiate_server(%r) gave %r" % (value, agreed))
        answer = agreed.header_value()
        if negotiate_server(answer) != agreed or accept_client_response(answer) != agreed:
            raise AssertionError("agreement %r does not read back from %r" % (agreed, answer))
    try:
        accepted = accept_client_response(value)
    except HandshakeError:
        return
    if accepted is not None and type(accepted) is not DeflateParams:
        raise AssertionError("accept_client_response(%r) gave %r" % (value, accepted))


def test_one_input(data):
    if not data:
        return
    flags = data[0]
    protocols = PROTOCOLS[flags & 3]
    allowed_origins = ORIGINS[(flags >> 2) & 3]
    compression = bool(flags & 16)
    status = STATUSES[flags >> 5]
    method, version, headers = parse_request(data[1:].decode("latin-1"))

    try:
        handshake = server_handshake(headers, method, version, protocols, allowed_origins,
                                     compression)
    except HandshakeError as error:
        expected = VERSIONS_HEADER if error.status == 426 else []
        if error.status not in (400, 403, 426) or error.headers != expected:
            raise AssertionError("refused with %d %r" % (error.status, error.headers))
    else:
        if type(handshake) is not ServerHandshake or handshake.version not in (13, 8, 7):
            raise AssertionError("accepted as %r" % (handshake,))
        response = {name.lower(): value for name, value in handshake.headers}
        agreed = check_response(101, response, handshake.key, protocols, compression)
        if agreed != (handshake.subprotocol, handshake.deflate):
            raise AssertionError("client read %r from %r" % (agreed, handshake.headers))

    if "sec-websocket-extensions" in headers:
        _check_extensions(headers["sec-websocket-extensions"])

    # The same headers as a server's answer to a client.
    if status == 101 and "sec-websocket-accept" in headers:
        headers["sec-websocket-accept"] = accept_key(CLIENT_KEY)  # get past that check
    try:
        check_response(status, headers, CLIENT_KEY, protocols, compression)
    except HandshakeError as error:
        if error.status != status:
            raise AssertionError("refused the answer %d as %d" % (status, error.status))


def _request(lines, flags=0x10):
    return bytes([flags]) + ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def seeds():
    base = ["GET /chat HTTP/1.1", "Host: server.example.com", "Upgrade: websocket",
            "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13", "Origin: http://example.com"]
    offers = ["permessage-deflate; client_max_window_bits",
              "permessage-deflate; server_no_context_takeover; client_max_window_bits=10, "
              "permessage-deflate",
              'permessage-deflate; server_max_window_bits="9"; client_no_context_takeover',
              "x-webkit-deflate-frame, permessage-deflate; unknown=1, permessage-deflate"]
    inputs = [_request(base), _request(base, 0x0F),
              _request(base[:-2] + ["Sec-WebSocket-Version: 8"])]
    for flags, offer in zip((0x10, 0x13, 0x17, 0x1B), offers):
        inputs.append(_request(base + ["Sec-WebSocket-Protocol: chat, superchat",
                                       "Sec-WebSocket-Extensions: " + offer], flags))
    answer = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
              "Sec-WebSocket-Protocol: chat",
              "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=12"]
    inputs.append(_request(answer, 0x13))
    return inputs


if __name__ == "__main__":
    _common.fuzz("handshake", test_one_input, seeds())
