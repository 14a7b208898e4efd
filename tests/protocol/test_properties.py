"""Properties of the sans-I/O core, checked by hypothesis on generated input.

- A stream of valid frames gives exactly the events it was built from,
  whether it is fed whole or cut anywhere into receive_data() calls.
- Serializing a frame header and parsing it back is the identity.
- Arbitrary bytes never raise out of receive_data(): at most one Failure,
  last, with 1002, 1007 or 1009; the connection never holds more than the
  size limit plus one unfinished control frame.
- Arbitrary handshake headers raise nothing but HandshakeError (400, 403,
  426); a handshake that succeeds produces a 101 the client side accepts.

Every test runs a fixed set of examples (derandomize, no example database),
so a CI run is reproducible and leaves no .hypothesis folder behind.
"""

import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from wsocket.errors import HandshakeError
from wsocket.protocol import connection as connection_module
from wsocket.protocol import frames
from wsocket.protocol.connection import (
    CLIENT, SERVER, CloseReceived, Connection, Failure, Message, Ping, Pong, is_valid_close_code,
)
from wsocket.protocol.deflate import (
    DeflateParams, accept_client_response, negotiate_server, parse_extensions,
)
from wsocket.protocol.handshake import ServerHandshake, check_response, server_handshake

from wire_helpers import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, frame, header, ref_mask

SETTINGS = settings(
    max_examples=200, deadline=None, derandomize=True, database=None, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FAILURE_CODES = {1002, 1007, 1009}
# The most an unparsed remainder can hold: a control frame (at most 125 bytes
# of payload) behind the longest header (14 bytes), one byte short of whole.
MAX_PENDING = 14 + 125 - 1

sides = st.sampled_from([SERVER, CLIENT])
windows = st.sampled_from([None, 8, 9, 12, 15])
deflate_params = st.builds(DeflateParams, st.booleans(), st.booleans(), windows, windows)
maybe_deflate = st.none() | deflate_params
masks = st.binary(min_size=4, max_size=4)


def _other(side):
    return SERVER if side == CLIENT else CLIENT


def _big(length, text):
    """A payload past the 7-bit (and 16-bit) length forms, cheap to build."""
    if text:
        return ("wsocket \u00e9\u20ac\U0001f600 " * (length // 20 + 1))[:length]
    return (bytes(range(256)) * (length // 256 + 1))[:length]


# Text with multi-byte UTF-8 (hypothesis' text() draws from all of Unicode
# but the surrogates), binary, and now and then a payload of 126 bytes or more.
messages = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    st.builds(_big, st.sampled_from([126, 127, 1000, 65535, 65536, 70000]), st.booleans()),
)
control_payloads = st.binary(max_size=125)
close_codes = st.sampled_from([1000, 1001, 1002, 1003] + list(range(1007, 1015))) | st.integers(
    3000, 4999)
close_reasons = st.text(max_size=30)  # at most 120 UTF-8 bytes: always fits


def _cut(data, cuts):
    cuts = sorted(cuts)
    return [data[start:stop] for start, stop in zip([0] + cuts, cuts + [len(data)])]


def _feed_all(connection, pieces):
    events = []
    for piece in pieces:
        events.extend(connection.receive_data(piece))
    return events


def _feed_all_as_the_event_app(connection, pieces):
    """_feed_all through receive_messages (the event app's read): the same events expected."""
    events = []
    for piece in pieces:
        rest = []
        messages = connection.receive_messages(piece, rest)
        assert all(type(value) in (str, bytes) for value in messages)
        events.extend(Message(value) for value in messages)
        events.extend(rest)
    return events


@st.composite
def valid_streams(draw, sender_side, params):
    """(bytes, events): what a ``sender_side`` Connection sends, and what the peer must see.

    Whole messages come from the sender's send_message(); fragmented ones are
    cut by hand (through the sender's own compressor, so the deflate context
    stays shared) with pings and pongs between their fragments. A close
    frame ends the stream, then bytes that must never be read.
    """
    sender = Connection(sender_side, deflate=params)
    masked = sender_side == CLIENT
    chunks, expected = [], []

    def control_frame():
        opcode = draw(st.sampled_from([PING, PONG]))
        payload = draw(control_payloads)
        chunks.append(frame(opcode, payload, key=draw(masks) if masked else None))
        expected.append(Ping(payload) if opcode == PING else Pong(payload))

    for kind in draw(st.lists(st.sampled_from(["whole", "fragmented", "ping", "pong"]),
                              max_size=6)):
        if kind == "ping":
            payload = draw(control_payloads)
            chunks.append(sender.send_ping(payload))
            expected.append(Ping(payload))
        elif kind == "pong":
            payload = draw(control_payloads)
            chunks.append(sender.send_pong(payload))
            expected.append(Pong(payload))
        elif kind == "whole":
            message = draw(messages)
            chunks.append(sender.send_message(message, compress=draw(st.booleans())))
            expected.append(Message(message))
        else:
            message = draw(messages)
            opcode = TEXT if isinstance(message, str) else BINARY
            payload = message.encode("utf-8") if opcode == TEXT else message
            rsv = 0
            if params is not None and draw(st.booleans()):
                compressed = sender._codec.compress(payload)
                if compressed is not None:  # None: sent as is (an 8-bit window, over 256 bytes)
                    payload, rsv = compressed, 4
            cuts = draw(st.lists(st.integers(0, len(payload)), min_size=1, max_size=4))
            pieces = _cut(payload, cuts)
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                chunks.append(frame(opcode if index == 0 else CONTINUATION, piece, fin=last,
                                    rsv=rsv if index == 0 else 0,
                                    key=draw(masks) if masked else None))
                if not last:
                    for _ in range(draw(st.integers(0, 2))):
                        control_frame()
            expected.append(Message(message))
    close = draw(st.none() | st.tuples(close_codes, close_reasons))
    if close is None:
        chunks.append(sender.send_close(None))
        expected.append(CloseReceived(1005, "", b""))
    else:
        code, reason = close
        chunks.append(sender.send_close(code, reason))
        expected.append(CloseReceived(code, reason, struct.pack("!H", code) + reason.encode()))
    chunks.append(draw(st.binary(max_size=40)))  # after the close frame: never parsed
    return b"".join(chunks), expected


# -- valid streams: cut anywhere, the same events -----------------------------------------

@SETTINGS
@given(st.data())
def test_valid_stream_cut_anywhere_gives_the_events_it_was_built_from(data):
    sender_side = data.draw(sides, label="sender")
    params = data.draw(maybe_deflate, label="deflate")
    stream, expected = data.draw(valid_streams(sender_side, params), label="stream")
    receiver_side = _other(sender_side)

    assert Connection(receiver_side, deflate=params).receive_data(stream) == expected
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30), label="cuts")
    pieces = _cut(stream, cuts)
    assert _feed_all(Connection(receiver_side, deflate=params), pieces) == expected
    # The event app's way in: the messages' data, then whatever follows them.
    receiver = Connection(receiver_side, deflate=params)
    assert _feed_all_as_the_event_app(receiver, pieces) == expected


@SETTINGS
@given(st.data())
def test_valid_stream_fed_byte_by_byte_gives_the_events_it_was_built_from(data):
    sender_side = data.draw(sides, label="sender")
    params = data.draw(maybe_deflate, label="deflate")
    stream, expected = data.draw(valid_streams(sender_side, params), label="stream")
    stream = stream[:3000]  # long payloads: their start is enough, byte by byte
    receiver_side = _other(sender_side)

    whole = Connection(receiver_side, deflate=params).receive_data(stream)
    if len(stream) < 3000:
        assert whole == expected
    receiver = Connection(receiver_side, deflate=params)
    assert _feed_all(receiver, [stream[i:i + 1] for i in range(len(stream))]) == whole


# -- frame headers: serialize then parse ----------------------------------------------------

lengths = st.one_of(
    st.integers(0, 125), st.integers(126, 0xFFFF), st.integers(0x10000, 2 ** 64 - 1),
    st.sampled_from([0, 125, 126, 127, 0xFFFF, 0x10000, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1]),
)


@SETTINGS
@given(opcode=st.integers(0, 15), fin=st.booleans(), rsv1=st.booleans(), length=lengths,
       mask=st.none() | masks, before=st.binary(max_size=6), after=st.binary(max_size=6))
def test_serialize_then_parse_header_is_identity(opcode, fin, rsv1, length, mask, before, after):
    encoded = frames.serialize_header(opcode, length, fin, rsv1, mask)
    # The same bytes as the independent builder: the shortest length form.
    assert encoded == header(opcode, length, fin, 4 if rsv1 else 0, mask)
    parsed = frames.parse_header(before + encoded + after, len(before))
    assert (parsed.fin, parsed.rsv1, parsed.rsv2, parsed.rsv3, parsed.opcode, parsed.mask,
            parsed.length, parsed.size) == (fin, rsv1, False, False, opcode, mask, length,
                                            len(encoded))
    for cut in range(len(encoded)):  # every partial header: "not yet"
        assert frames.parse_header(before + encoded[:cut], len(before)) is None


@SETTINGS
@given(opcode=st.integers(0, 15), fin=st.booleans(), rsv=st.integers(0, 7), length=lengths,
       mask=st.none() | masks)
def test_parse_reads_every_flag_of_a_hand_built_header(opcode, fin, rsv, length, mask):
    parsed = frames.parse_header(header(opcode, length, fin, rsv, mask))
    assert (parsed.fin, parsed.rsv1, parsed.rsv2, parsed.rsv3, parsed.opcode, parsed.mask,
            parsed.length) == (fin, bool(rsv & 4), bool(rsv & 2), bool(rsv & 1), opcode, mask,
                               length)


@SETTINGS
@given(opcode=st.integers(0, 15), payload=st.binary(max_size=70000), fin=st.booleans(),
       rsv1=st.booleans(), masked=st.booleans())
def test_serialize_then_parse_frame_is_identity(opcode, payload, fin, rsv1, masked):
    encoded = frames.serialize_frame(opcode, payload, fin, rsv1, masked)
    parsed = frames.parse_header(encoded)
    assert (parsed.fin, parsed.rsv1, parsed.opcode, parsed.mask is not None, parsed.length) == (
        fin, rsv1, opcode, masked, len(payload))
    body = encoded[parsed.size:]
    assert len(body) == len(payload)
    assert (ref_mask(body, parsed.mask) if masked else body) == payload


@SETTINGS
@given(data=st.binary(max_size=300), mask=masks)
def test_both_mask_paths_match_the_rfc_and_undo_themselves(data, mask):
    expected = ref_mask(data, mask)
    assert frames.apply_mask(data, mask) == expected
    assert frames._apply_mask_python(data, mask) == expected
    assert frames.apply_mask(bytearray(data), mask) == expected
    assert frames.apply_mask(expected, mask) == data


# -- arbitrary bytes: only protocol failures, bounded memory ------------------------------

def _deflated(data, mode, junk):
    """Raw DEFLATE of ``data`` as a peer might send it, then maybe bytes that don't belong."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    if mode == "finish":  # ends with a BFINAL block (RFC 7692 7.2.3.4)
        body = compressor.compress(data) + compressor.flush(zlib.Z_FINISH)
    else:
        body = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if mode == "sync":
            body = body[:-4]
    return body + junk


raw_payloads = st.one_of(
    st.binary(max_size=150),
    st.text(max_size=60).map(lambda text: text.encode("utf-8")),
)
deflated_payloads = st.builds(
    _deflated,
    raw_payloads | st.builds(bytes, st.integers(0, 100000)),  # zeros: a compression bomb
    st.sampled_from(["sync", "finish", "flush"]),
    st.just(b"") | st.binary(max_size=50) | st.integers(0, 5000).map(lambda size: b"\xaa" * size),
)
payloads = raw_payloads | deflated_payloads


def _right_key(side):
    return b"\x37\xfa\x21\x3d" if side == SERVER else None


@st.composite
def message_frames(draw, side, key="right"):
    """The frames of one message, maybe compressed, maybe not all of them."""
    opcode = draw(st.sampled_from([TEXT, BINARY]))
    rsv = draw(st.sampled_from([0, 4, 4]))
    payload = draw(deflated_payloads if rsv else raw_payloads)
    cuts = draw(st.lists(st.integers(0, len(payload)), max_size=3))
    pieces = _cut(payload, cuts)
    key = _right_key(side) if key == "right" else key
    chunks = [frame(opcode if index == 0 else CONTINUATION, piece, fin=index == len(pieces) - 1,
                    rsv=rsv if index == 0 else 0, key=key)
              for index, piece in enumerate(pieces)]
    return b"".join(chunks[:draw(st.integers(1, len(chunks)))])


@st.composite
def frameish(draw, side):
    """Bytes that are sometimes a frame, sometimes almost one, sometimes noise.

    Frames are masked as ``side`` expects most of the time, so that the
    parser gets past the masking rule and into the rest.
    """
    kind = draw(st.sampled_from(["frame", "frame", "message", "message", "noise",
                                 "lying header"]))
    if kind == "noise":
        return draw(st.binary(min_size=1, max_size=40))
    key = draw(st.sampled_from(["right"] * 4 + ["wrong"]) | masks)
    key = {"right": _right_key(side), "wrong": b"\0\0\0\0" if side == CLIENT else None,
           }.get(key, key)
    if kind == "message":
        return draw(message_frames(side, key))
    opcode = draw(st.sampled_from([TEXT, BINARY, CONTINUATION, PING, PONG, CLOSE])
                  | st.integers(0, 15))
    fin = draw(st.booleans())
    rsv = draw(st.sampled_from([0, 4]) | st.integers(0, 7))
    if kind == "lying header":  # announces more (or much more) than follows
        length = draw(st.sampled_from([126, 200, 65536, 2 ** 31, 2 ** 63, 2 ** 64 - 1]))
        return header(opcode, length, fin, rsv, key) + draw(st.binary(max_size=30))
    payload = draw(payloads)
    if opcode == CLOSE and draw(st.booleans()):
        payload = struct.pack("!H", draw(st.integers(0, 65535))) + payload[:100]
    return frame(opcode, payload, fin, rsv, key)


def _retained(connection):
    """Bytes the connection holds between calls: (unparsed, message so far, in zlib)."""
    parts = sum(len(part.encode("utf-8")) if isinstance(part, str) else len(part)
                for part in connection._parts)
    codec = connection._codec
    inflater = codec._decompressor if codec is not None else None
    in_zlib = 0 if inflater is None else len(inflater.unused_data) + len(inflater.unconsumed_tail)
    return len(connection._buffer), parts, in_zlib


def _check_events(events, limit):
    for index, event in enumerate(events):
        assert type(event) in (Message, Ping, Pong, CloseReceived, Failure)
        if type(event) in (Failure, CloseReceived):
            assert index == len(events) - 1, events  # nothing is parsed after either
        if type(event) is Failure:
            assert event.code in FAILURE_CODES, event
        elif type(event) is Message:
            assert type(event.data) in (str, bytes)
            size = len(event.data.encode("utf-8") if type(event.data) is str else event.data)
            assert size <= limit
        elif type(event) in (Ping, Pong):
            assert type(event.payload) is bytes and len(event.payload) <= 125
        elif type(event) is CloseReceived:
            assert event.code == 1005 or is_valid_close_code(event.code)
            assert len(event.payload) <= 125


def _comparable(events, deflate):
    """What a stream cut elsewhere must give too.

    A failure's reason may word one error differently by where the bytes
    were cut (UTF-8 decoder messages): only its code counts. With
    permessage-deflate, not even that: zlib raises on corrupt data without
    giving the output before it, so a message both corrupt and invalid
    UTF-8 (or too long) fails with 1002 when its bytes come at once and with
    1007 (or 1009) when they come a few at a time (found by fuzz/fuzz_frames.py).
    """
    return [("Failure", None if deflate else event.code) if type(event) is Failure else event
            for event in events]


def _check_garbage(side, params, limit, stream, cuts):
    connection = Connection(side, deflate=params, max_message_size=limit)
    events = []
    held = 0
    for piece in _cut(stream, cuts):
        events.extend(connection.receive_data(piece))
        pending, parts, in_zlib = _retained(connection)
        held = max(held, pending + parts + in_zlib - limit)
        assert pending <= MAX_PENDING
        assert parts <= limit
        # zlib keeps no input between calls: all of it went into the window,
        # and what follows the end of a DEFLATE stream is dropped.
        assert in_zlib == 0
    target(float(held), label="bytes held past the size limit")  # steer towards the bound
    _check_events(events, limit)
    if events and type(events[-1]) in (Failure, CloseReceived):
        assert connection.receive_data(stream) == []
    whole = Connection(side, deflate=params, max_message_size=limit).receive_data(stream)
    assert _comparable(whole, params) == _comparable(events, params)


limits = st.sampled_from([0, 1, 7, 64, 125, 300, 4096])


@SETTINGS
@given(side=sides, message=st.text(max_size=100) | st.binary(max_size=100),
       junk=st.binary(max_size=50) | st.integers(0, 5000).map(lambda size: b"\xaa" * size),
       data=st.data())
def test_bytes_after_a_final_deflate_block_are_ignored_and_not_kept(side, message, junk, data):
    # RFC 7692 7.2.3.4: a message may end its DEFLATE stream with BFINAL;
    # the RFC's own example has a byte after it. Nothing after it is inflated
    # or held, however long the message goes on.
    text = isinstance(message, str)
    payload = _deflated(message.encode("utf-8") if text else message, "finish", junk)
    cuts = data.draw(st.lists(st.integers(0, len(payload)), max_size=3), label="fragments")
    pieces = _cut(payload, cuts)
    key = _right_key(side)
    stream = b"".join(
        frame((TEXT if text else BINARY) if index == 0 else CONTINUATION, piece,
              fin=index == len(pieces) - 1, rsv=4 if index == 0 else 0, key=key)
        for index, piece in enumerate(pieces))
    # The next message, with context takeover, starts a new stream.
    stream += frame(TEXT, _deflated(b"next", "sync", b""), rsv=4, key=key)
    connection = Connection(side, deflate=DeflateParams(), max_message_size=200)
    events = []
    for piece in _cut(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=20))):
        events.extend(connection.receive_data(piece))
        assert _retained(connection)[2] == 0
    assert events == [Message(message), Message("next")]


@SETTINGS
@given(side=sides, params=maybe_deflate, limit=limits, data=st.data())
def test_frame_like_garbage_fails_cleanly_and_stays_bounded(side, params, limit, data):
    # Anything frame-like, or only well-formed messages (that keep the parser going).
    frames_ = st.lists(frameish(side), max_size=12) | st.lists(message_frames(side), max_size=6)
    stream = b"".join(data.draw(frames_, label="frames"))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20), label="cuts")
    _check_garbage(side, params, limit, stream, cuts)


@SETTINGS
@given(side=sides, params=maybe_deflate, limit=limits, stream=st.binary(max_size=3000),
       data=st.data())
def test_random_bytes_fail_cleanly_and_stay_bounded(side, params, limit, stream, data):
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20), label="cuts")
    _check_garbage(side, params, limit, stream, cuts)


@SETTINGS
@given(side=sides, params=maybe_deflate, limit=limits, data=st.data())
def test_receive_messages_gives_what_receive_data_gives_on_garbage(side, params, limit, data):
    frames_ = st.lists(frameish(side), max_size=12) | st.lists(message_frames(side), max_size=6)
    stream = b"".join(data.draw(frames_, label="frames"))
    pieces = _cut(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    expected = _feed_all(Connection(side, deflate=params, max_message_size=limit), pieces)
    receiver = Connection(side, deflate=params, max_message_size=limit)
    assert _feed_all_as_the_event_app(receiver, pieces) == expected



# -- the handshake ------------------------------------------------------------------------

VALID_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
PROTOCOLS = ["chat", "superchat", "v2.json"]

tokens = st.sampled_from(["permessage-deflate", "PerMessage-Deflate", "x-webkit-deflate-frame",
                          "foo", "server_no_context_takeover", "client_no_context_takeover",
                          "server_max_window_bits", "client_max_window_bits", "chat"])
param_values = st.sampled_from(["8", "9", "15", "16", "7", "08", '"10"', '"1"0"', "", "x", '"'])
extension_params = st.lists(st.tuples(tokens, st.none() | param_values), max_size=4).map(
    lambda params: "".join("; %s" % name if value is None else "; %s=%s" % (name, value)
                           for name, value in params))
extension_headers = st.one_of(
    st.text(max_size=80),
    st.lists(st.tuples(tokens, extension_params), max_size=3).map(
        lambda offers: ", ".join(name + params for name, params in offers)),
)


def _header_value(good, *plausible):
    """Mostly right, sometimes plausible but wrong, sometimes anything at all."""
    return st.one_of(st.just(good), st.sampled_from(list(plausible) + [" " + good + " "]),
                     st.text(max_size=40), st.none())


request_headers = st.fixed_dictionaries({
    "upgrade": _header_value("websocket", "WebSocket", "h2c, websocket", "websockets", ""),
    "connection": _header_value("Upgrade", "keep-alive, upgrade", "close", "upgrades"),
    "sec-websocket-version": _header_value("13", "8", "7", "12", "14", "\xb2", "-13", "13, 8"),
    "sec-websocket-key": _header_value(VALID_KEY, "dGhlIHNhbXBsZSBub25jZQ", "AAAA", "\xe9" * 24,
                                       "dGhlIHNhbXBsZSBub25jZQ==\n", "dGhl IHNhbXBsZSBub25jZQ=="),
    "origin": _header_value("http://example.com", "http://evil.example", ""),
    "sec-websocket-origin": _header_value("http://example.com", "null"),
    "sec-websocket-protocol": _header_value("chat", "superchat, chat", "v2.json,chat", " , ,"),
    "sec-websocket-extensions": extension_headers | st.none(),
}).map(lambda headers: {name: value for name, value in headers.items() if value is not None})


@SETTINGS
@given(headers=request_headers | st.dictionaries(st.text(max_size=25), st.text(max_size=40)),
       method=st.sampled_from(["GET", "GET", "POST", "get"]) | st.text(max_size=8),
       http_version=st.sampled_from(["HTTP/1.1", "HTTP/1.1", "http/1.1", "HTTP/1.0"])
       | st.text(max_size=10),
       protocols=st.none() | st.lists(st.sampled_from(PROTOCOLS), unique=True),
       allowed_origins=st.none() | st.lists(st.sampled_from(["http://example.com", "null"])),
       compression=st.booleans())
def test_server_handshake_refuses_with_a_status_or_gives_a_101_the_client_accepts(
        headers, method, http_version, protocols, allowed_origins, compression):
    try:
        handshake = server_handshake(headers, method, http_version, protocols, allowed_origins,
                                     compression)
    except HandshakeError as error:
        assert error.status in (400, 403, 426)
        expected_headers = [("Sec-WebSocket-Version", "13, 8, 7")] if error.status == 426 else []
        assert error.headers == expected_headers
        return
    assert type(handshake) is ServerHandshake
    assert handshake.version in (13, 8, 7)
    assert handshake.subprotocol is None or handshake.subprotocol in protocols
    assert handshake.deflate is None or compression
    response = {name.lower(): value for name, value in handshake.headers}
    assert check_response(101, response, handshake.key, protocols, compression) == (
        handshake.subprotocol, handshake.deflate)


@SETTINGS
@given(extension_headers)
def test_extension_parsing_raises_only_value_error_and_negotiation_never(value):
    try:
        parsed = parse_extensions(value)
    except ValueError:
        parsed = None
    else:
        assert type(parsed) is list
    agreed = negotiate_server(value)
    assert agreed is None or type(agreed) is DeflateParams
    if parsed is None:
        assert agreed is None  # a malformed header is declined, not answered
    if agreed is not None:
        # The 101's answer reads back as the same agreement, on both sides.
        assert negotiate_server(agreed.header_value()) == agreed
        assert accept_client_response(agreed.header_value()) == agreed
    try:
        answer = accept_client_response(value)
    except HandshakeError as error:
        assert error.status == 400
    else:
        assert answer is None or type(answer) is DeflateParams


# -- the C batch parser changes nothing -----------------------------------------------------

def _events_of(side, params, limit, pieces, batch):
    """Every event of ``pieces`` fed in turn, with or without the C batch parser."""
    saved = connection_module.parse_messages
    connection_module.parse_messages = saved if batch else None
    try:
        connection = Connection(side, deflate=params, max_message_size=limit)
        events = []
        for piece in pieces:
            events.extend(connection.receive_data(piece))
        return events, bytes(connection._buffer)
    finally:
        connection_module.parse_messages = saved


@pytest.mark.skipif(frames.parse_messages is None, reason="the C accelerator is not in use")
@SETTINGS
@given(side=sides, params=maybe_deflate, limit=st.sampled_from([None, 0, 7, 125, 300, 70000]),
       chunks=st.data())
def test_the_c_batch_parser_gives_exactly_the_events_of_the_python_parser(side, params, limit,
                                                                          chunks):
    # Runs of whole small messages, compressed or not, mixed with everything
    # it must leave to Python: control frames, fragments, bad bits, wrong
    # masking, invalid UTF-8, messages over the limit, incomplete frames,
    # noise. Compressed ones it hands to the same inflate as Python does.
    stream = b"".join(chunks.draw(st.lists(
        frameish(side) | message_frames(side) | st.builds(
            lambda text, key: frame(TEXT, text.encode("utf-8"), key=key),
            st.text(max_size=200), st.just(_right_key(side))), max_size=16), label="frames"))
    cuts = chunks.draw(st.lists(st.integers(0, len(stream)), max_size=4), label="cuts")
    pieces = _cut(stream, cuts)
    assert _events_of(side, params, limit, pieces, batch=True) == \
        _events_of(side, params, limit, pieces, batch=False)
