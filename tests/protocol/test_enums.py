"""CloseCode, Side and State: enums that stay equal to the ints and strings they replaced."""

import struct

import pytest

from wsocket.errors import ConnectionClosed, FrameTooLargeException, InvalidUTF8, ProtocolError
from wsocket.protocol import connection as connection_module
from wsocket.protocol.codes import CloseCode, close_code, is_valid_close_code
from wsocket.protocol.connection import (
    CLIENT,
    CLOSED,
    CLOSING,
    OPEN,
    SERVER,
    CloseReceived,
    Connection,
    Failure,
    Side,
    State,
)
from wsocket.protocol.frames import OP_CLOSE, OP_TEXT, serialize_frame

# RFC 6455 7.4.1 and the IANA WebSocket Close Code Number Registry.
IANA_NAMES = {
    1000: "NORMAL_CLOSURE", 1001: "GOING_AWAY", 1002: "PROTOCOL_ERROR",
    1003: "UNSUPPORTED_DATA", 1005: "NO_STATUS_RCVD", 1006: "ABNORMAL_CLOSURE",
    1007: "INVALID_DATA", 1008: "POLICY_VIOLATION", 1009: "MESSAGE_TOO_BIG",
    1010: "MANDATORY_EXTENSION", 1011: "INTERNAL_ERROR", 1012: "SERVICE_RESTART",
    1013: "TRY_AGAIN_LATER", 1014: "BAD_GATEWAY", 1015: "TLS_HANDSHAKE",
}


def test_close_codes_are_the_registry():
    assert {int(code): code.name for code in CloseCode} == IANA_NAMES


@pytest.mark.parametrize("code", list(CloseCode))
def test_a_close_code_is_an_int_everywhere(code):
    number = int(code)
    assert code == number and hash(code) == hash(number)
    assert {number: "found"}[code] == "found"
    assert struct.pack("!H", code) == struct.pack("!H", number)
    # printed as the number on every Python (3.9 and 3.10 would say CloseCode.X)
    assert str(code) == "%d" % code == "%s" % code == f"{code}" == str(number)


def test_the_codes_never_sent_are_invalid_on_the_wire():
    never_sent = {CloseCode.NO_STATUS_RCVD, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE}
    for code in CloseCode:
        assert is_valid_close_code(code) == (code not in never_sent)


def test_close_code_names_known_codes_and_keeps_the_others():
    assert close_code(1001) is CloseCode.GOING_AWAY
    for unnamed in (4000, 3000, 4999):
        assert close_code(unnamed) == unnamed and type(close_code(unnamed)) is int


def test_connection_module_still_exports_the_close_code_helpers():
    assert connection_module.is_valid_close_code is is_valid_close_code
    assert connection_module.CloseCode is CloseCode


def client_close(code, reason=b""):
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return serialize_frame(OP_CLOSE, payload, masked=True)


@pytest.mark.parametrize("sent, expected", [
    (1001, CloseCode.GOING_AWAY), (1000, CloseCode.NORMAL_CLOSURE),
    (None, CloseCode.NO_STATUS_RCVD),
])
def test_a_received_close_reports_a_close_code(sent, expected):
    server = Connection(SERVER)
    [event] = server.receive_data(client_close(sent, b"bye" if sent else b""))
    assert type(event) is CloseReceived
    assert event.code is expected
    assert server.close_received[0] is expected


def test_an_application_close_code_stays_a_plain_int():
    server = Connection(SERVER)
    [event] = server.receive_data(client_close(4321, b"app"))
    assert event == CloseReceived(4321, "app", struct.pack("!H", 4321) + b"app")
    assert type(event.code) is int


@pytest.mark.parametrize("frame, expected", [
    (serialize_frame(OP_TEXT, b"unmasked"), CloseCode.PROTOCOL_ERROR),
    (serialize_frame(OP_TEXT, b"\xff", masked=True), CloseCode.INVALID_DATA),
    (serialize_frame(OP_TEXT, b"x" * 200, masked=True), CloseCode.MESSAGE_TOO_BIG),
])
def test_failures_carry_close_codes(frame, expected):
    server = Connection(SERVER, max_message_size=100)
    [event] = server.receive_data(frame)
    assert type(event) is Failure
    assert event.code is expected


def test_errors_carry_close_codes():
    assert ProtocolError("x").code is CloseCode.PROTOCOL_ERROR
    assert ProtocolError("x", 1008).code == 1008
    assert FrameTooLargeException("x").code is CloseCode.MESSAGE_TOO_BIG
    assert InvalidUTF8("x").code is CloseCode.INVALID_DATA
    closed = ConnectionClosed()
    assert closed.code is CloseCode.ABNORMAL_CLOSURE
    assert str(closed) == "WebSocket connection closed (code 1006)"
    assert str(ConnectionClosed(CloseCode.GOING_AWAY, "bye")) == \
        "WebSocket connection closed (code 1001): bye"


def test_send_close_takes_a_close_code():
    client = Connection(CLIENT)
    frame = client.send_close(CloseCode.GOING_AWAY, "bye")
    server = Connection(SERVER)
    [event] = server.receive_data(frame)
    assert (event.code, event.reason) == (1001, "bye")
    assert Connection(CLIENT).send_close()  # the default is NORMAL_CLOSURE
    assert Connection(SERVER).send_close(1000) == Connection(SERVER).send_close(
        CloseCode.NORMAL_CLOSURE)


@pytest.mark.parametrize("member, text", [
    (SERVER, "server"), (CLIENT, "client"), (OPEN, "OPEN"), (CLOSING, "CLOSING"),
    (CLOSED, "CLOSED"),
])
def test_sides_and_states_are_the_strings_they_were(member, text):
    assert member == text and text == member and hash(member) == hash(text)
    assert {text: "found"}[member] == "found"
    assert str(member) == "%s" % member == f"{member}" == format(member, "") == text
    assert f"[{member:>8}]" == "[%8s]" % text


def test_the_old_names_are_the_enum_members():
    assert SERVER is Side.SERVER and CLIENT is Side.CLIENT
    assert (OPEN, CLOSING, CLOSED) == (State.OPEN, State.CLOSING, State.CLOSED)
    assert OPEN is State.OPEN and CLOSING is State.CLOSING and CLOSED is State.CLOSED


def test_a_connection_takes_the_side_as_a_string_too():
    assert Connection("client").side is Side.CLIENT
    assert Connection(side="server").side is Side.SERVER
    assert Connection().side is Side.SERVER
    with pytest.raises(ValueError) as caught:
        Connection("bogus")
    assert str(caught.value) == "side must be 'server' or 'client', not 'bogus'"


def test_states_move_through_the_enum():
    server = Connection(SERVER)
    assert server.state is State.OPEN
    server.send_close(1000)
    assert server.state is State.CLOSING
    server.receive_data(client_close(1000))
    assert server.state is State.CLOSED
