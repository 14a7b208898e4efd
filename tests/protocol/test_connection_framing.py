"""Connection: whole messages of every length class (Autobahn group 1), masking rules."""

import pytest

from wsocket.errors import ProtocolError
from wsocket.protocol.connection import (
    CLIENT, OPEN, SERVER, Connection, Failure, Message, Ping,
)

from wire_helpers import (
    BINARY, MASK, PING, TEXT, chops, feed, frame, header, periodic_masked, periodic_payload,
    ref_mask, server_frame, split_frame,
)

MiB = 1024 * 1024
SIZES = [0, 1, 125, 126, 127, 128, 65535, 65536]


def _text(size):
    return "*" * size


def _binary(size):
    return bytes((i * 31 + 7) % 256 for i in range(size))


def _assert_only_last_piece_completes(per_piece, message):
    *before, last = per_piece
    assert all(events == [] for events in before)
    assert last == [message]


# -- receiving whole and chopped messages -------------------------------------------

# 1-byte chops of 64 KiB are left to the binary case, to keep the run short.
@pytest.mark.parametrize("size, piece", [
    (size, piece) for size in SIZES for piece in (None, 997, 1) if piece != 1 or size < 65536])
def test_text_message_server_side(size, piece):
    data = frame(TEXT, _text(size))
    connection = Connection(SERVER)
    per_piece = feed(connection, chops(data, piece or len(data)))
    _assert_only_last_piece_completes(per_piece, Message(_text(size)))
    assert isinstance(per_piece[-1][0].data, str)
    assert connection.state == OPEN


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("piece", [None, 997, 1], ids=["whole", "chops-997", "chops-1"])
def test_binary_message_server_side(size, piece):
    data = frame(BINARY, _binary(size))
    connection = Connection(SERVER)
    per_piece = feed(connection, chops(data, piece or len(data)))
    _assert_only_last_piece_completes(per_piece, Message(_binary(size)))
    assert isinstance(per_piece[-1][0].data, bytes)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
@pytest.mark.parametrize("piece", [None, 997], ids=["whole", "chops-997"])
def test_unmasked_message_client_side(size, opcode, piece):
    payload = _text(size) if opcode == TEXT else _binary(size)
    data = server_frame(opcode, payload)
    connection = Connection(CLIENT)
    per_piece = feed(connection, chops(data, piece or len(data)))
    _assert_only_last_piece_completes(per_piece, Message(payload))


@pytest.mark.parametrize("size", [2 * MiB, 3 * MiB + 3])
@pytest.mark.parametrize("piece", [None, 65536, 997], ids=["whole", "chops-64k", "chops-997"])
def test_messages_of_a_few_mib(size, piece):
    data = header(BINARY, size, key=MASK) + periodic_masked(size)
    connection = Connection(SERVER, max_message_size=4 * MiB)
    per_piece = feed(connection, chops(data, piece or len(data)))
    _assert_only_last_piece_completes(per_piece, Message(periodic_payload(size)))


def test_multi_byte_text_of_65536_bytes():
    text = "\u20ac" * 21845 + "x"  # 3 * 21845 + 1 = 65536 bytes
    connection = Connection(SERVER)
    per_piece = feed(connection, chops(frame(TEXT, text), 997))
    _assert_only_last_piece_completes(per_piece, Message(text))


def test_several_frames_in_one_call_give_events_in_order():
    data = (frame(TEXT, "one") + frame(BINARY, b"two") + frame(PING, b"p")
            + frame(TEXT, "") + frame(BINARY, b""))
    assert Connection(SERVER).receive_data(data) == [
        Message("one"), Message(b"two"), Ping(b"p"), Message(""), Message(b"")]


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 997])
def test_stream_of_messages_in_chops_keeps_order(piece):
    messages = [_text(n) if n % 2 else _binary(n) for n in (0, 1, 125, 126, 127, 128, 300, 5)]
    data = b"".join(frame(TEXT if isinstance(m, str) else BINARY, m) for m in messages)
    connection = Connection(SERVER)
    events = [event for events in feed(connection, chops(data, piece)) for event in events]
    assert events == [Message(m) for m in messages]


def test_frames_with_different_keys_and_zero_key():
    data = (frame(TEXT, "a", key=b"\x00\x00\x00\x00") + frame(TEXT, "b", key=b"\xff\xfe\xfd\xfc")
            + frame(BINARY, b"cdef", key=b"\x01\x02\x03\x04"))
    assert Connection(SERVER).receive_data(data) == [Message("a"), Message("b"),
                                                     Message(b"cdef")]


def test_empty_input_gives_no_events():
    connection = Connection(SERVER)
    assert connection.receive_data(b"") == []
    assert connection.receive_data(bytearray()) == []


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_receive_data_accepts_bytes_like(kind):
    assert Connection(SERVER).receive_data(kind(frame(BINARY, b"xyz"))) == [Message(b"xyz")]


# -- masking rules -----------------------------------------------------------------

@pytest.mark.parametrize("opcode, payload", [(TEXT, "hello"), (BINARY, b""), (PING, b"x"),
                                             (0x8, b"\x03\xe8")])
def test_server_fails_unmasked_frames_with_1002(opcode, payload):
    connection = Connection(SERVER)
    assert connection.receive_data(server_frame(opcode, payload)) == [
        Failure(1002, "client frames must be masked")]
    assert connection.receive_data(frame(TEXT, "later")) == []


def test_server_fails_unmasked_frame_at_its_header():
    connection = Connection(SERVER)
    assert connection.receive_data(b"\x81\x7e\x01\x00") == [
        Failure(1002, "client frames must be masked")]


def test_good_message_then_unmasked_frame():
    connection = Connection(SERVER)
    assert connection.receive_data(frame(TEXT, "ok") + server_frame(TEXT, "bad")) == [
        Message("ok"), Failure(1002, "client frames must be masked")]


@pytest.mark.parametrize("opcode, payload", [(TEXT, "hello"), (BINARY, b""), (PING, b"x")])
def test_client_fails_masked_frames_with_1002(opcode, payload):
    connection = Connection(CLIENT)
    assert connection.receive_data(frame(opcode, payload)) == [
        Failure(1002, "server frames must not be masked")]


def test_constructor_validation():
    with pytest.raises(ValueError, match="side must be"):
        Connection("peer")
    with pytest.raises(ValueError, match="max_message_size"):
        Connection(SERVER, max_message_size=-1)


# -- what each side sends -----------------------------------------------------------

@pytest.mark.parametrize("data, binary, expected", [
    ("hello", None, b"\x81\x05hello"),
    ("", None, b"\x81\x00"),
    (b"\x00\xff", None, b"\x82\x02\x00\xff"),
    (b"", None, b"\x82\x00"),
    (bytearray(b"ab"), None, b"\x82\x02ab"),
    (memoryview(b"ab"), None, b"\x82\x02ab"),
    ("\u20ac", True, b"\x82\x03\xe2\x82\xac"),
    ("\u20ac", None, b"\x81\x03\xe2\x82\xac"),
    (b"text", False, b"\x81\x04text"),
    ("x" * 126, None, b"\x81\x7e\x00\x7e" + b"x" * 126),
    (b"y" * 65536, None, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" + b"y" * 65536),
])
def test_server_sends_unmasked_exact_bytes(data, binary, expected):
    assert Connection(SERVER).send_message(data, binary=binary) == expected


@pytest.mark.parametrize("data, opcode, payload", [
    ("hello", TEXT, b"hello"),
    ("", TEXT, b""),
    (b"\x00\x01\x02\x03\x04\x05", BINARY, b"\x00\x01\x02\x03\x04\x05"),
    ("x" * 200, TEXT, b"x" * 200),
    (b"z" * 70000, BINARY, b"z" * 70000),
])
def test_client_masks_its_frames(data, opcode, payload):
    sent = Connection(CLIENT).send_message(data)
    fin, rsv, got_opcode, key, unmasked = split_frame(sent)
    assert (fin, rsv, got_opcode) == (True, 0, opcode)
    assert key is not None and len(key) == 4
    assert unmasked == payload
    if payload and key != b"\x00\x00\x00\x00":
        assert ref_mask(payload, key) != payload  # really masked on the wire


def test_client_frames_are_read_by_a_server_connection():
    client, server = Connection(CLIENT), Connection(SERVER)
    for message in ["hi", b"\x00" * 1000, "\u00e9" * 100, b""]:
        assert server.receive_data(client.send_message(message)) == [Message(message)]
    assert server.receive_data(client.send_ping(b"p")) == [Ping(b"p")]


def test_server_frames_are_read_by_a_client_connection():
    client, server = Connection(CLIENT), Connection(SERVER)
    for message in ["hi", b"\x00" * 70000, "\u00e9" * 100, b""]:
        assert client.receive_data(server.send_message(message)) == [Message(message)]


def test_fail_after_a_failure_event_sends_the_close_frame_and_stops_sending():
    connection = Connection(SERVER)
    (failure,) = connection.receive_data(server_frame(TEXT, "unmasked"))
    assert connection.fail(failure.code, failure.reason) == (
        b"\x88\x1e\x03\xea" + b"client frames must be masked")
    assert not connection.can_send
    with pytest.raises(ProtocolError, match="cannot send a message after the close frame"):
        connection.send_message("x")
