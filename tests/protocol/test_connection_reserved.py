"""Connection: reserved bits and reserved opcodes (Autobahn groups 3 and 4)."""

import pytest

from wsocket.protocol.connection import SERVER, Connection, Failure, Message, Ping
from wsocket.protocol.deflate import DeflateParams

from wire_helpers import (
    BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, close_payload, frame, header, MASK,
)

RSV1, RSV2, RSV3 = 4, 2, 1
RSV_VALUES = [RSV1, RSV2, RSV3, RSV1 | RSV2, RSV2 | RSV3, RSV1 | RSV3, 7]
RSV1_REASON = "reserved bit RSV1 set without an extension"
RSV23_REASON = "reserved bits RSV2/RSV3 set without an extension"
FRAMES = {
    "text": (TEXT, b"Hello, world!"),
    "binary": (BINARY, b"\x00\xff" * 8),
    "empty-text": (TEXT, b""),
    "ping": (PING, b"Hello, world!"),
    "pong": (PONG, b"pong"),
    "close": (CLOSE, close_payload(1000)),
}


def _reason(rsv):
    return RSV23_REASON if rsv & (RSV2 | RSV3) else RSV1_REASON


@pytest.mark.parametrize("rsv", RSV_VALUES)
@pytest.mark.parametrize("kind", FRAMES)
def test_reserved_bits_without_extension_fail_with_1002(rsv, kind):
    opcode, payload = FRAMES[kind]
    connection = Connection(SERVER)
    assert connection.receive_data(frame(opcode, payload, rsv=rsv)) == [
        Failure(1002, _reason(rsv))]
    assert connection.receive_data(frame(TEXT, "after")) == []


@pytest.mark.parametrize("rsv", RSV_VALUES)
@pytest.mark.parametrize("kind", FRAMES)
def test_good_message_comes_before_the_failure(rsv, kind):
    opcode, payload = FRAMES[kind]
    data = frame(TEXT, "Hello, world!") + frame(opcode, payload, rsv=rsv) + frame(PING, b"x")
    connection = Connection(SERVER)
    # No Ping event for the ping that follows the bad frame.
    assert connection.receive_data(data) == [Message("Hello, world!"), Failure(1002, _reason(rsv))]
    assert connection.receive_data(frame(PING, b"after")) == []


@pytest.mark.parametrize("rsv", RSV_VALUES)
def test_reserved_bits_fail_at_the_header_before_the_payload(rsv):
    assert Connection(SERVER).receive_data(header(BINARY, 1000, rsv=rsv, key=MASK)) == [
        Failure(1002, _reason(rsv))]


@pytest.mark.parametrize("rsv", RSV_VALUES)
def test_reserved_bits_on_a_continuation_frame(rsv):
    data = frame(TEXT, "frag", fin=False) + frame(CONTINUATION, "ment", rsv=rsv)
    assert Connection(SERVER).receive_data(data) == [Failure(1002, _reason(rsv))]


@pytest.mark.parametrize("rsv", [RSV2, RSV3, RSV2 | RSV3])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_rsv2_and_rsv3_fail_even_with_deflate(rsv, opcode):
    connection = Connection(SERVER, deflate=DeflateParams())
    assert connection.receive_data(frame(opcode, b"x", rsv=rsv)) == [Failure(1002, RSV23_REASON)]


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE, CONTINUATION])
def test_rsv1_on_non_first_frames_fails_with_deflate(opcode):
    connection = Connection(SERVER, deflate=DeflateParams())
    data = frame(BINARY, b"", fin=False) if opcode == CONTINUATION else b""
    payload = close_payload(1000) if opcode == CLOSE else b""
    assert connection.receive_data(data + frame(opcode, payload, rsv=RSV1)) == [
        Failure(1002, "RSV1 is only allowed on the first frame of a message")]


# -- reserved opcodes ----------------------------------------------------------------

RESERVED_OPCODES = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
@pytest.mark.parametrize("payload", [b"", b"reserved opcode payload"])
def test_reserved_opcodes_fail_with_1002(opcode, payload):
    connection = Connection(SERVER)
    assert connection.receive_data(frame(opcode, payload)) == [
        Failure(1002, "reserved opcode %#x" % opcode)]


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_reserved_opcode_after_a_good_message(opcode):
    data = frame(TEXT, "Hello, world!") + frame(opcode) + frame(PING, b"x")
    assert Connection(SERVER).receive_data(data) == [
        Message("Hello, world!"), Failure(1002, "reserved opcode %#x" % opcode)]


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_reserved_opcode_after_ping_and_message_chopped(opcode):
    data = frame(PING, b"p") + frame(TEXT, "Hello") + frame(opcode, b"x" * 10)
    connection = Connection(SERVER)
    events = []
    for i in range(len(data)):
        events.extend(connection.receive_data(data[i:i + 1]))
    assert events == [Ping(b"p"), Message("Hello"), Failure(1002, "reserved opcode %#x" % opcode)]


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_reserved_opcode_fails_at_its_header(opcode):
    # Judged at the header: the 16 MiB payload it announces is never waited for.
    assert Connection(SERVER).receive_data(header(opcode, 1 << 24, key=MASK)) == [
        Failure(1002, "reserved opcode %#x" % opcode)]


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_reserved_opcode_inside_a_fragmented_message(opcode):
    data = frame(TEXT, "frag", fin=False) + frame(opcode, b"")
    assert Connection(SERVER).receive_data(data) == [Failure(1002, "reserved opcode %#x" % opcode)]


def test_length_with_most_significant_bit_set_fails():
    raw = b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00" + MASK
    assert Connection(SERVER, max_message_size=None).receive_data(raw) == [
        Failure(1002, "payload length with the most significant bit set")]
