"""Connection: pings and pongs (Autobahn group 2)."""

import pytest

from wsocket.protocol.connection import CLIENT, SERVER, Connection, Failure, Message, Ping, Pong

from wire_helpers import (
    CONTINUATION, MASK, PING, PONG, TEXT, chops, feed, frame, header, ref_mask, split_frame,
)

TOO_LONG = Failure(1002, "control frame payload of 126 bytes (at most 125)")


@pytest.mark.parametrize("size", range(126))
def test_ping_payload_of_every_allowed_size(size):
    payload = bytes((i * 5 + 1) % 256 for i in range(size))
    assert Connection(SERVER).receive_data(frame(PING, payload)) == [Ping(payload)]


@pytest.mark.parametrize("payload", [b"", b"Hello, world!", "\u00e9t\u00e9 \u20ac".encode("utf-8"),
                                     b"\x00\xff\xfe\xfd\xfc\xfb\xfa\xf9", b"\xfe" * 125])
def test_ping_text_and_binary_payloads(payload):
    events = Connection(SERVER).receive_data(frame(PING, payload))
    assert events == [Ping(payload)]
    assert type(events[0].payload) is bytes


@pytest.mark.parametrize("size", [0, 1, 4, 5, 125])
def test_ping_written_one_byte_at_a_time(size):
    payload = bytes(range(size))
    connection = Connection(SERVER)
    per_byte = feed(connection, chops(frame(PING, payload), 1))
    assert per_byte[:-1] == [[]] * (len(per_byte) - 1)
    assert per_byte[-1] == [Ping(payload)]


def test_ping_of_126_bytes_fails_with_1002():
    connection = Connection(SERVER)
    assert connection.receive_data(frame(PING, b"\xfe" * 126)) == [TOO_LONG]
    assert connection.receive_data(frame(PING, b"after")) == []


def test_ping_of_126_bytes_fails_at_its_header_before_the_payload():
    connection = Connection(SERVER)
    assert connection.receive_data(header(PING, 126, key=MASK)) == [TOO_LONG]
    assert connection.receive_data(ref_mask(b"\xfe" * 126, MASK)) == []


@pytest.mark.parametrize("opcode", [PING, PONG])
@pytest.mark.parametrize("length", [127, 65535, 65536])
def test_control_frames_with_longer_length_encodings_fail(opcode, length):
    assert Connection(SERVER).receive_data(header(opcode, length, key=MASK)) == [
        Failure(1002, "control frame payload of %d bytes (at most 125)" % length)]


@pytest.mark.parametrize("payload", [b"", b"unsolicited", bytes(range(125))])
def test_unsolicited_pong_gives_a_pong_event_only(payload):
    connection = Connection(SERVER)
    assert connection.receive_data(frame(PONG, payload)) == [Pong(payload)]
    assert connection.receive_data(frame(TEXT, "after")) == [Message("after")]


def test_unsolicited_pong_then_ping():
    data = frame(PONG, b"unsolicited") + frame(PING, b"ping")
    assert Connection(SERVER).receive_data(data) == [Pong(b"unsolicited"), Ping(b"ping")]


def test_ten_pings_in_a_row_in_one_call():
    payloads = [b"payload-%d" % i for i in range(10)]
    data = b"".join(frame(PING, p) for p in payloads)
    assert Connection(SERVER).receive_data(data) == [Ping(p) for p in payloads]


@pytest.mark.parametrize("piece", [1, 3, 997])
def test_ten_pings_in_a_row_chopped(piece):
    payloads = [b"payload-%d" % i for i in range(10)]
    data = b"".join(frame(PING, p) for p in payloads)
    connection = Connection(SERVER)
    events = [e for events in feed(connection, chops(data, piece)) for e in events]
    assert events == [Ping(p) for p in payloads]


def test_ping_between_fragments_comes_out_before_the_message():
    connection = Connection(SERVER)
    assert connection.receive_data(frame(TEXT, "fragment1", fin=False)) == []
    assert connection.receive_data(frame(PING, b"ping")) == [Ping(b"ping")]
    assert connection.receive_data(frame(CONTINUATION, "fragment2")) == [
        Message("fragment1fragment2")]


def test_ping_between_fragments_in_one_call_keeps_order():
    data = (frame(TEXT, "fragment1", fin=False) + frame(PING, b"ping")
            + frame(CONTINUATION, "fragment2"))
    assert Connection(SERVER).receive_data(data) == [Ping(b"ping"),
                                                     Message("fragment1fragment2")]


def test_ping_right_after_a_frame_header_of_length_zero_fragment():
    data = (frame(TEXT, "", fin=False) + frame(PING, b"a") + frame(PONG, b"b")
            + frame(CONTINUATION, "", fin=False) + frame(PING, b"c") + frame(CONTINUATION, "x"))
    assert Connection(SERVER).receive_data(data) == [Ping(b"a"), Pong(b"b"), Ping(b"c"),
                                                     Message("x")]


# -- sending pings and pongs --------------------------------------------------------

@pytest.mark.parametrize("method, first", [("send_ping", 0x89), ("send_pong", 0x8A)])
@pytest.mark.parametrize("payload", [b"", b"abcd", bytes(range(125))])
def test_server_sends_exact_control_bytes(method, first, payload):
    sent = getattr(Connection(SERVER), method)(payload)
    assert sent == bytes([first, len(payload)]) + payload


@pytest.mark.parametrize("method, opcode", [("send_ping", PING), ("send_pong", PONG)])
def test_client_masks_control_frames(method, opcode):
    sent = getattr(Connection(CLIENT), method)(b"payload")
    fin, rsv, got_opcode, key, payload = split_frame(sent)
    assert (fin, rsv, got_opcode, payload) == (True, 0, opcode, b"payload")
    assert key is not None


@pytest.mark.parametrize("payload, expected", [
    ("h\u00e9", b"h\xc3\xa9"), (bytearray(b"ba"), b"ba"), (memoryview(b"mv"), b"mv")])
def test_control_payload_types(payload, expected):
    assert Connection(SERVER).send_pong(payload) == bytes([0x8A, len(expected)]) + expected


@pytest.mark.parametrize("method", ["send_ping", "send_pong"])
def test_control_payload_of_126_bytes_is_refused(method):
    with pytest.raises(ValueError, match=r"^control frame payload of 126 bytes \(at most 125\)$"):
        getattr(Connection(SERVER), method)(b"x" * 126)


def test_answering_a_ping_with_its_payload():
    server = Connection(SERVER)
    (ping,) = server.receive_data(frame(PING, b"echo me"))
    assert server.send_pong(ping.payload) == b"\x8a\x07echo me"
