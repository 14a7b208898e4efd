"""Connection: fragmented messages and their misuse (Autobahn group 5)."""

import pytest

from wsocket.protocol.connection import (
    CLIENT, SERVER, CloseReceived, Connection, Failure, Message, Ping, Pong,
)

from wire_helpers import (
    BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, chops, close_payload, feed, frame,
    server_frame,
)

NO_MESSAGE = Failure(1002, "continuation frame without a message to continue")
NESTED = Failure(1002, "new data frame inside a fragmented message")
FRAGMENTED_CONTROL = Failure(1002, "fragmented control frame")


# -- misuse ----------------------------------------------------------------------------

@pytest.mark.parametrize("fin", [True, False])
@pytest.mark.parametrize("payload", [b"", b"fragment"])
def test_continuation_without_a_message(fin, payload):
    connection = Connection(SERVER)
    assert connection.receive_data(frame(CONTINUATION, payload, fin=fin)) == [NO_MESSAGE]
    assert connection.receive_data(frame(TEXT, "late")) == []


def test_continuation_after_a_finished_message():
    data = frame(TEXT, "whole") + frame(CONTINUATION, "more")
    assert Connection(SERVER).receive_data(data) == [Message("whole"), NO_MESSAGE]


def test_continuation_after_a_fragmented_message_completed():
    data = (frame(TEXT, "a", fin=False) + frame(CONTINUATION, "b")
            + frame(CONTINUATION, "c"))
    assert Connection(SERVER).receive_data(data) == [Message("ab"), NO_MESSAGE]


@pytest.mark.parametrize("first", [TEXT, BINARY])
@pytest.mark.parametrize("second", [TEXT, BINARY])
@pytest.mark.parametrize("second_fin", [True, False])
def test_new_data_frame_inside_a_fragmented_message(first, second, second_fin):
    data = frame(first, b"fragment1", fin=False) + frame(second, b"fragment2", fin=second_fin)
    assert Connection(SERVER).receive_data(data) == [NESTED]


def test_new_data_frame_after_some_continuations():
    data = (frame(TEXT, "a", fin=False) + frame(CONTINUATION, "b", fin=False)
            + frame(PING, b"p") + frame(TEXT, "c"))
    assert Connection(SERVER).receive_data(data) == [Ping(b"p"), NESTED]


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
@pytest.mark.parametrize("payload", [b"", b"\x03\xe8fragmented"])
def test_fragmented_control_frame(opcode, payload):
    connection = Connection(SERVER)
    data = frame(opcode, payload, fin=False) + frame(CONTINUATION, b"more")
    assert connection.receive_data(data) == [FRAGMENTED_CONTROL]


@pytest.mark.parametrize("opcode", [PING, PONG])
def test_fragmented_control_frame_inside_a_fragmented_message(opcode):
    data = frame(TEXT, "a", fin=False) + frame(opcode, b"x", fin=False)
    assert Connection(SERVER).receive_data(data) == [FRAGMENTED_CONTROL]


def test_misuse_fails_at_the_header_before_payload():
    connection = Connection(SERVER)
    assert connection.receive_data(frame(TEXT, "a", fin=False)) == []
    # Only the header of the nested text frame has arrived.
    assert connection.receive_data(frame(TEXT, "x" * 300)[:8]) == [NESTED]


# -- good fragmented messages -----------------------------------------------------------

@pytest.mark.parametrize("count", [2, 3, 10])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_message_in_fragments(count, opcode):
    parts = [b"part%d-" % i for i in range(count)]
    data = frame(opcode, parts[0], fin=False)
    data += b"".join(frame(CONTINUATION, p, fin=False) for p in parts[1:-1])
    data += frame(CONTINUATION, parts[-1])
    expected = b"".join(parts)
    connection = Connection(SERVER)
    assert connection.receive_data(data) == [
        Message(expected.decode() if opcode == TEXT else expected)]


def test_each_fragment_gives_no_event_until_the_last():
    connection = Connection(SERVER)
    assert connection.receive_data(frame(TEXT, "fragment1", fin=False)) == []
    assert connection.receive_data(frame(CONTINUATION, "fragment2", fin=False)) == []
    assert connection.receive_data(frame(CONTINUATION, "fragment3")) == [
        Message("fragment1fragment2fragment3")]


@pytest.mark.parametrize("controls, expected_controls", [
    ([frame(PING, b"")], [Ping(b"")]),
    ([frame(PONG, b"pong")], [Pong(b"pong")]),
    ([frame(PING, b"1"), frame(PONG, b"2"), frame(PING, b"3")], [Ping(b"1"), Pong(b"2"),
                                                                  Ping(b"3")]),
])
@pytest.mark.parametrize("piece", [None, 1, 5], ids=["whole", "chops-1", "chops-5"])
def test_fragmented_text_with_controls_between(controls, expected_controls, piece):
    data = (frame(TEXT, "fragment1", fin=False) + b"".join(controls)
            + frame(CONTINUATION, "fragment2", fin=False) + b"".join(controls)
            + frame(CONTINUATION, "fragment3"))
    connection = Connection(SERVER)
    events = [e for events in feed(connection, chops(data, piece or len(data))) for e in events]
    assert events == expected_controls * 2 + [Message("fragment1fragment2fragment3")]


def test_controls_are_reported_as_soon_as_they_arrive():
    connection = Connection(SERVER)
    assert connection.receive_data(frame(TEXT, "fragment1", fin=False)) == []
    assert connection.receive_data(frame(PING, b"now")) == [Ping(b"now")]
    assert connection.receive_data(frame(PONG, b"now too")) == [Pong(b"now too")]
    assert connection.receive_data(frame(CONTINUATION, "fragment2")) == [
        Message("fragment1fragment2")]


@pytest.mark.parametrize("opcode, empty", [(TEXT, ""), (BINARY, b"")])
def test_all_fragments_empty(opcode, empty):
    data = (frame(opcode, b"", fin=False) + frame(CONTINUATION, b"", fin=False)
            + frame(CONTINUATION, b""))
    events = Connection(SERVER).receive_data(data)
    assert events == [Message(empty)]
    assert type(events[0].data) is type(empty)


def test_empty_fragments_around_data():
    data = (frame(TEXT, b"", fin=False) + frame(CONTINUATION, b"abc", fin=False)
            + frame(CONTINUATION, b"", fin=False) + frame(PING, b"")
            + frame(CONTINUATION, b"def", fin=False) + frame(CONTINUATION, b""))
    assert Connection(SERVER).receive_data(data) == [Ping(b""), Message("abcdef")]


@pytest.mark.parametrize("piece", [1, 2, 3, 997])
def test_message_of_one_byte_fragments_chopped(piece):
    text = "fragmented one byte at a time"
    raw = text.encode()
    data = frame(TEXT, raw[:1], fin=False)
    data += b"".join(frame(CONTINUATION, raw[i:i + 1], fin=False) for i in range(1, len(raw) - 1))
    data += frame(CONTINUATION, raw[-1:])
    connection = Connection(SERVER)
    events = [e for events in feed(connection, chops(data, piece)) for e in events]
    assert events == [Message(text)]


def test_messages_after_a_fragmented_message_start_afresh():
    connection = Connection(SERVER)
    data = (frame(BINARY, b"\x01", fin=False) + frame(CONTINUATION, b"\x02")
            + frame(TEXT, "next") + frame(TEXT, "x", fin=False) + frame(CONTINUATION, "y"))
    assert connection.receive_data(data) == [Message(b"\x01\x02"), Message("next"),
                                             Message("xy")]


def test_fragments_with_different_mask_keys():
    data = (frame(TEXT, "ab", fin=False, key=b"\x01\x02\x03\x04")
            + frame(CONTINUATION, "cde", fin=False, key=b"\xaa\xbb\xcc\xdd")
            + frame(CONTINUATION, "f", key=b"\x00\x00\x00\x00"))
    assert Connection(SERVER).receive_data(data) == [Message("abcdef")]


def test_client_side_fragmented_message():
    data = (server_frame(TEXT, "hello ", fin=False) + server_frame(PING, b"p")
            + server_frame(CONTINUATION, "world"))
    assert Connection(CLIENT).receive_data(data) == [Ping(b"p"), Message("hello world")]


def test_close_between_fragments_is_not_a_failure():
    data = frame(TEXT, "a", fin=False) + frame(CLOSE, close_payload(1000))
    assert Connection(SERVER).receive_data(data) == [CloseReceived(1000, "", b"\x03\xe8")]
