"""Coverage-guided fuzzing (atheris, libFuzzer) of the frame parser and state machine.

    python fuzz/fuzz_frames.py -max_total_time=30 [corpus folder] [libFuzzer options]

An input is three bytes of settings, then the stream a ``Connection``
receives:

- byte 0: bit 0 the side (0 server, 1 client), bit 1 permessage-deflate,
  bits 2-3 its no_context_takeover flags, bits 4-7 its window bits;
- byte 1: the size limit, one of ``LIMITS``;
- byte 2: how the stream is cut into ``receive_data()`` calls (0: whole).

Every input must pass these checks; anything else raised is a crash:

- ``receive_data()`` returns Message, Ping, Pong, CloseReceived and Failure
  events only; a Failure (1002, 1007 or 1009) or a CloseReceived comes last;
- between calls the connection holds at most one unfinished control frame
  unparsed, at most the size limit of the message so far, nothing in zlib;
- the stream cut into pieces gives the same events as fed whole;
- answering the events (echo each message, pong each ping, answer the close
  or fail) gives bytes from which the peer reads exactly those answers;
- the C and the Python masking agree.
"""

import struct

import atheris

import _common

_common.use_source_tree()

with atheris.instrument_imports(include=["wsocket"]):
    from wsocket.protocol import frames
    from wsocket.protocol.connection import (
        CLIENT, SERVER, CloseReceived, Connection, Failure, Message, Ping, Pong,
        is_valid_close_code,
    )
    from wsocket.protocol.deflate import DeflateCodec, DeflateParams
    from wsocket.protocol.frames import (
        OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT,
    )

LIMITS = (0, 1, 7, 64, 125, 126, 1000, 65536, 1024 * 1024, None)
WINDOWS = (None, 8, 9, 15)
FAILURE_CODES = (1002, 1007, 1009)
MAX_PENDING = 14 + 125 - 1  # the longest header and a control frame, one byte short
EVENT_TYPES = (Message, Ping, Pong, CloseReceived, Failure)


def settings(data):
    """(side, deflate params, size limit, piece size) from the first three bytes."""
    flags = data[0]
    side = CLIENT if flags & 1 else SERVER
    params = None
    if flags & 2:
        params = DeflateParams(bool(flags & 4), bool(flags & 8), WINDOWS[(flags >> 4) & 3],
                               WINDOWS[(flags >> 6) & 3])
    return side, params, LIMITS[data[1] % len(LIMITS)], data[2]


def _size(data):
    return len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)


def _check_held(connection, limit):
    pending = len(connection._buffer)
    parts = sum(_size(part) for part in connection._parts)
    codec = connection._codec
    inflater = codec._decompressor if codec is not None else None
    in_zlib = 0 if inflater is None else len(inflater.unused_data) + len(inflater.unconsumed_tail)
    if pending > MAX_PENDING or (limit is not None and parts > limit) or in_zlib:
        raise AssertionError("connection holds %d bytes unparsed, %d of the message, %d in zlib"
                             " (limit %r)" % (pending, parts, in_zlib, limit))


def _check_events(events, limit):
    for index, event in enumerate(events):
        if type(event) not in EVENT_TYPES:
            raise AssertionError("unexpected event %r" % (event,))
        if type(event) in (Failure, CloseReceived) and index != len(events) - 1:
            raise AssertionError("events after %r: %r" % (event, events[index + 1:]))
        if type(event) is Failure and event.code not in FAILURE_CODES:
            raise AssertionError("failure with code %r" % (event,))
        if type(event) is Message:
            if type(event.data) not in (str, bytes):
                raise AssertionError("message of type %s" % type(event.data).__name__)
            if limit is not None and _size(event.data) > limit:
                raise AssertionError("message of %d bytes past the limit %d"
                                     % (_size(event.data), limit))
        if type(event) in (Ping, Pong) and (type(event.payload) is not bytes
                                            or len(event.payload) > 125):
            raise AssertionError("bad control payload %r" % (event,))
        if type(event) is CloseReceived and not (event.code == 1005
                                                 or is_valid_close_code(event.code)):
            raise AssertionError("close with code %r" % (event,))


def _comparable(events, deflate):
    """Events as a stream cut elsewhere must give them too.

    A failure's reason may word one error differently by where the bytes
    were cut (UTF-8 decoder messages): only its code counts. With
    permessage-deflate, not even that: zlib raises on corrupt data without
    giving the output before it, so a message both corrupt and invalid
    UTF-8 (or too long) fails with 1002 when its bytes come at once and with
    1007 (or 1009) when they come a few at a time.
    """
    return [("Failure", None if deflate else event.code) if type(event) is Failure else event
            for event in events]


def _answer(connection, events):
    """What a server loop sends back, and what the peer must read from it."""
    out, expected = [], []
    for event in events:
        if type(event) is Message:
            out.append(connection.send_message(event.data))
            expected.append(event)
        elif type(event) is Ping:
            out.append(connection.send_pong(event.payload))
            expected.append(Pong(event.payload))
        elif type(event) is CloseReceived:
            if event.code == 1005:
                out.append(connection.send_close(None))
                expected.append(CloseReceived(1005, "", b""))
            else:
                out.append(connection.send_close(event.code, event.reason))
                expected.append(event)
        elif type(event) is Failure:
            out.append(connection.fail(event.code, event.reason))
            expected.append(("close", event.code))
    return b"".join(out), expected


def test_one_input(data):
    if len(data) < 3:
        return
    side, params, limit, piece = settings(data)
    stream = data[3:]

    whole = Connection(side, deflate=params, max_message_size=limit).receive_data(stream)
    connection = Connection(side, deflate=params, max_message_size=limit)
    events = []
    pieces = [stream[i:i + piece] for i in range(0, len(stream), piece)] if piece else [stream]
    for chunk in pieces:
        events.extend(connection.receive_data(chunk))
        _check_held(connection, limit)
    _check_events(events, limit)
    if _comparable(events, params) != _comparable(whole, params):
        raise AssertionError("cut in pieces of %d: %r, whole: %r" % (piece, events, whole))

    answer, expected = _answer(connection, events)
    peer = Connection(CLIENT if side == SERVER else SERVER, deflate=params, max_message_size=None)
    received = peer.receive_data(answer)
    received = [("close", event.code) if type(event) is CloseReceived
                and expected[-1:] == [("close", event.code)] else event for event in received]
    if received != expected:
        raise AssertionError("the peer read %r from the answers %r" % (received, expected))

    if frames.SPEEDUPS:
        key = (stream[:4] + b"\0\0\0\0")[:4]
        body = stream[4:]
        if frames.apply_mask(body, key) != frames._apply_mask_python(body, key):
            raise AssertionError("C and Python masking differ for key %r" % key)


def _frame(opcode, payload, masked, fin=True, rsv1=False):
    key = b"\x37\xfa\x21\x3d" if masked else None  # fixed: the same seeds every run
    body = frames.apply_mask(payload, key) if masked else payload
    return frames.serialize_header(opcode, len(payload), fin, rsv1, key) + body


def seeds():
    """Valid streams for each side and deflate setting, cut three ways."""
    inputs = []
    for flags in (0, 1, 2, 3, 2 | 4 | 8, 3 | 4 | 8 | 0x50, 2 | 0xF0):
        side, params, _, _ = settings(bytes([flags, 0, 0]))
        masked = side == SERVER
        codec = None if params is None else DeflateCodec(params, CLIENT if masked else SERVER)

        def message(opcode, payload):
            compressed = None if codec is None else codec.compress(payload)
            if compressed is None:
                return _frame(opcode, payload, masked)
            return _frame(opcode, compressed, masked, rsv1=True)

        fragmented = "fragm\u00e9".encode("utf-8")  # cut inside the \u00e9
        stream = b"".join([
            message(OP_TEXT, "h\u00e9llo \u20ac\U0001f600".encode("utf-8")),
            message(OP_BINARY, b"\x00\xff" * 70),
            _frame(OP_PING, b"ping", masked),
            _frame(OP_BINARY, b"x" * 300, masked),
            _frame(OP_TEXT, fragmented[:6], masked, fin=False),
            _frame(OP_PING, b"in between", masked),
            _frame(OP_CONTINUATION, fragmented[6:], masked),
            _frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye", masked),
        ])
        for limit_index, cut in ((8, 0), (6, 1), (7, 5)):
            inputs.append(bytes([flags, limit_index, cut]) + stream)
    return inputs


if __name__ == "__main__":
    _common.fuzz("frames", test_one_input, seeds())
