"""Connection: the closing handshake (Autobahn group 7) and sending after it."""

import struct

import pytest

from wsocket.errors import ProtocolError
from wsocket.protocol.connection import (
    CLIENT, CLOSED, CLOSING, OPEN, SERVER, CloseReceived, Connection, Failure, Message,
    check_close_code, is_valid_close_code,
)

from wire_helpers import (
    BINARY, CLOSE, CONTINUATION, MASK, PING, TEXT, frame, header, split_frame,
)

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
               3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


def _close(code, reason=b""):
    return frame(CLOSE, struct.pack("!H", code) + reason)


# -- receiving close frames ------------------------------------------------------------

def test_empty_close_payload_means_1005():
    connection = Connection(SERVER)
    assert connection.receive_data(frame(CLOSE, b"")) == [CloseReceived(1005, "", b"")]
    assert connection.close_received == (1005, "")
    assert connection.state == CLOSING


def test_one_byte_close_payload_fails_with_1002():
    assert Connection(SERVER).receive_data(frame(CLOSE, b"\x03")) == [
        Failure(1002, "close frame with a 1-byte payload")]


def test_two_byte_close_payload():
    assert Connection(SERVER).receive_data(frame(CLOSE, b"\x03\xe8")) == [
        CloseReceived(1000, "", b"\x03\xe8")]


@pytest.mark.parametrize("reason", ["*" * 123, "\u00e9" * 61 + "x", "\u20ac" * 41,
                                    "\U0001f600" * 30 + "abc"])
def test_reason_of_123_bytes_is_accepted(reason):
    raw = reason.encode()
    assert len(raw) == 123
    payload = b"\x03\xe8" + raw
    assert Connection(SERVER).receive_data(frame(CLOSE, payload)) == [
        CloseReceived(1000, reason, payload)]


def test_reason_of_124_bytes_fails_with_1002():
    assert Connection(SERVER).receive_data(_close(1000, b"*" * 124)) == [
        Failure(1002, "control frame payload of 126 bytes (at most 125)")]


@pytest.mark.parametrize("code", VALID_CODES)
def test_each_valid_code_is_accepted(code):
    payload = struct.pack("!H", code) + b"reason"
    connection = Connection(SERVER)
    assert connection.receive_data(frame(CLOSE, payload)) == [CloseReceived(code, "reason",
                                                                            payload)]
    assert is_valid_close_code(code)


@pytest.mark.parametrize("code", INVALID_CODES)
def test_each_invalid_code_fails_with_1002(code):
    assert Connection(SERVER).receive_data(_close(code)) == [
        Failure(1002, "invalid close code %d" % code)]
    assert not is_valid_close_code(code)


def test_code_validity_over_the_whole_range():
    for code in range(65536):
        expected = 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
        assert is_valid_close_code(code) is expected, code


@pytest.mark.parametrize("reason", [b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
                                    b"\xff", b"\xc0\xaf", b"ok\xce"])
def test_invalid_utf8_reason_fails_with_1002(reason):
    assert Connection(SERVER).receive_data(_close(1000, reason)) == [
        Failure(1002, "close reason is not valid UTF-8")]


def test_message_then_close_in_one_call():
    data = frame(TEXT, "Hello World!") + _close(1000)
    assert Connection(SERVER).receive_data(data) == [Message("Hello World!"),
                                                     CloseReceived(1000, "", b"\x03\xe8")]


@pytest.mark.parametrize("after", [frame(TEXT, "after"), frame(PING, b"after"),
                                   _close(1001), frame(CLOSE, b"\x03"), frame(7, b""),
                                   b"\xff\xff\xff garbage"])
def test_data_after_close_is_ignored(after):
    connection = Connection(SERVER)
    assert connection.receive_data(_close(1000) + after) == [CloseReceived(1000, "",
                                                                           b"\x03\xe8")]
    assert connection.receive_data(after) == []
    assert connection.close_received == (1000, "")


def test_close_inside_a_fragmented_message_is_a_clean_close():
    connection = Connection(SERVER)
    assert connection.receive_data(frame(TEXT, "fragment1", fin=False)) == []
    assert connection.receive_data(_close(1000)) == [CloseReceived(1000, "", b"\x03\xe8")]
    assert connection.receive_data(frame(CONTINUATION, "fragment2")) == []
    assert connection.state == CLOSING


def test_close_inside_a_fragmented_message_in_one_call():
    data = (frame(BINARY, b"1", fin=False) + frame(CONTINUATION, b"2", fin=False)
            + _close(1001, b"bye") + frame(CONTINUATION, b"3"))
    assert Connection(SERVER).receive_data(data) == [CloseReceived(1001, "bye", b"\x03\xe9bye")]


def test_close_fed_a_byte_at_a_time():
    data = _close(3000, b"slow")
    connection = Connection(SERVER)
    per_byte = [connection.receive_data(data[i:i + 1]) for i in range(len(data))]
    assert per_byte == [[]] * (len(data) - 1) + [[CloseReceived(3000, "slow", b"\x0b\xb8slow")]]


def test_client_receives_unmasked_close():
    assert Connection(CLIENT).receive_data(b"\x88\x04\x03\xe8ok") == [
        CloseReceived(1000, "ok", b"\x03\xe8ok")]


# -- the state machine of closing ------------------------------------------------------

def test_we_close_first_then_the_peer_answers():
    connection = Connection(SERVER)
    assert connection.state == OPEN
    assert connection.send_close(1000) == b"\x88\x02\x03\xe8"
    assert connection.state == CLOSING
    assert connection.close_sent == (1000, "")
    assert not connection.can_send
    # Data the peer sent before it saw our close is still delivered.
    assert connection.receive_data(frame(TEXT, "late")) == [Message("late")]
    assert connection.receive_data(_close(1000)) == [CloseReceived(1000, "", b"\x03\xe8")]
    assert connection.state == CLOSED


def test_peer_closes_first_then_we_answer():
    connection = Connection(SERVER)
    assert connection.receive_data(_close(1001, b"going away")) == [
        CloseReceived(1001, "going away", b"\x03\xe9going away")]
    assert connection.state == CLOSING
    assert connection.send_close(1001, "going away") == b"\x88\x0c\x03\xe9going away"
    assert connection.state == CLOSED
    assert connection.close_sent == (1001, "going away")


def test_answering_an_empty_close_with_an_empty_close():
    connection = Connection(SERVER)
    connection.receive_data(frame(CLOSE))
    assert connection.send_close(None) == b"\x88\x00"
    assert connection.close_sent == (1005, "")
    assert connection.state == CLOSED


@pytest.mark.parametrize("code, reason, expected", [
    (1000, "", b"\x88\x02\x03\xe8"),
    (1000, "bye", b"\x88\x05\x03\xe8bye"),
    (4999, "\u00e9", b"\x88\x04\x13\x87\xc3\xa9"),
    (3000, b"raw", b"\x88\x05\x0b\xb8raw"),
    (1011, "x" * 123, b"\x88\x7d\x03\xf3" + b"x" * 123),
])
def test_send_close_exact_bytes(code, reason, expected):
    assert Connection(SERVER).send_close(code, reason) == expected


def test_client_close_is_masked():
    sent = Connection(CLIENT).send_close(1000, "done")
    fin, rsv, opcode, key, payload = split_frame(sent)
    assert (fin, rsv, opcode, payload) == (True, 0, CLOSE, b"\x03\xe8done")
    assert key is not None


@pytest.mark.parametrize("code", INVALID_CODES + [-1, 65536, 70000])
def test_send_close_with_invalid_code_raises_value_error(code):
    connection = Connection(SERVER)
    with pytest.raises(ValueError) as raised:
        connection.send_close(code)
    assert str(raised.value) == (
        "invalid close code %r: use 1000-1003, 1007-1014 or 3000-4999" % code)
    # Nothing was sent: a valid close still goes out afterwards.
    assert connection.state == OPEN and connection.close_sent is None
    assert connection.send_close(1000) == b"\x88\x02\x03\xe8"


@pytest.mark.parametrize("code", ["1000", 1000.0, b"\x03\xe8", True])
def test_send_close_with_a_non_integer_code_raises_value_error(code):
    with pytest.raises(ValueError, match="invalid close code"):
        Connection(SERVER).send_close(code)


@pytest.mark.parametrize("reason", ["x" * 124, "\u00e9" * 62, b"y" * 124])
def test_send_close_with_a_124_byte_reason_raises_value_error(reason):
    connection = Connection(SERVER)
    with pytest.raises(ValueError) as raised:
        connection.send_close(1000, reason)
    assert str(raised.value) == "close reason is 124 bytes long; at most 123 fit in a close frame"
    assert connection.state == OPEN and connection.close_sent is None


def test_check_close_code_returns_the_encoded_reason():
    assert check_close_code(1000, "\u00e9") == b"\xc3\xa9"
    assert check_close_code(4000, b"raw") == b"raw"


def test_sending_after_close_raises_protocol_error():
    connection = Connection(SERVER)
    connection.send_close(1000)
    with pytest.raises(ProtocolError, match="^cannot send a message after the close frame$"):
        connection.send_message("too late")
    with pytest.raises(ProtocolError, match="^cannot send a control frame after the close frame$"):
        connection.send_ping(b"")
    with pytest.raises(ProtocolError, match="^cannot send a control frame after the close frame$"):
        connection.send_pong(b"")
    with pytest.raises(ProtocolError, match="^close frame already sent$"):
        connection.send_close(1000)


def test_sending_messages_is_still_possible_after_receiving_close():
    # RFC 6455 5.5.1: the peer's close does not forbid us to finish what we were sending.
    connection = Connection(SERVER)
    connection.receive_data(_close(1000))
    assert connection.send_message("last") == b"\x81\x04last"
    assert connection.send_close(1000) == b"\x88\x02\x03\xe8"


# -- fail() -----------------------------------------------------------------------------

@pytest.mark.parametrize("code, reason, expected", [
    (1002, "protocol error", b"\x88\x10\x03\xeaprotocol error"),
    (1007, "", b"\x88\x02\x03\xef"),
    (1009, "too big", b"\x88\x09\x03\xf1too big"),
])
def test_fail_sends_a_close_frame_and_closes(code, reason, expected):
    connection = Connection(SERVER)
    assert connection.fail(code, reason) == expected
    assert connection.state == CLOSED
    assert connection.failed and not connection.can_send
    assert connection.receive_data(frame(TEXT, "ignored")) == []
    with pytest.raises(ProtocolError):
        connection.send_message("x")


def test_fail_cuts_a_long_reason_without_splitting_utf8():
    sent = Connection(SERVER).fail(1011, "\u00e9" * 100)  # 200 bytes of reason
    assert sent == b"\x88\x7c\x03\xf3" + "\u00e9".encode() * 61  # 122 bytes: 123 would split


def test_fail_after_our_close_sends_nothing():
    connection = Connection(SERVER)
    connection.send_close(1000)
    assert connection.fail(1002, "late") == b""
    assert connection.state == CLOSED


@pytest.mark.parametrize("code", [1006, 1005, 1015])
def test_fail_with_an_unsendable_code_sends_nothing(code):
    connection = Connection(SERVER)
    assert connection.fail(code) == b""
    assert connection.state == CLOSED


def test_fail_on_the_client_side_is_masked():
    fin, rsv, opcode, key, payload = split_frame(Connection(CLIENT).fail(1002, "bad"))
    assert (fin, rsv, opcode, payload) == (True, 0, CLOSE, b"\x03\xeabad")
    assert key is not None


def test_close_frame_with_payload_announced_but_not_arrived_gives_nothing_yet():
    connection = Connection(SERVER)
    assert connection.receive_data(header(CLOSE, 10, key=MASK)) == []
    assert connection.state == OPEN
