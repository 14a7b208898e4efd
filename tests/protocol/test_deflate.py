"""permessage-deflate (RFC 7692): negotiation, the codec, and the wire format.

The wire format is checked against Python's zlib used directly, never against
our own codec: what we send must inflate with a plain raw-DEFLATE decompressor
of the negotiated window, and what a plain compressor sends must be read.
"""

import random
import zlib

import pytest

from wsocket.errors import HandshakeError
from wsocket.protocol.connection import CLIENT, SERVER, Connection, Failure, Message, Ping
from wsocket.protocol.deflate import (
    DeflateParams, accept_client_response, client_offer, negotiate_server, parse_extensions,
)

from wire_helpers import (
    BINARY, CONTINUATION, PING, TEXT, frame, server_frame, split_frame,
)

TAIL = b"\x00\x00\xff\xff"
RSV1 = 4


# -- negotiation on the server -------------------------------------------------------------

WINDOW_CHOICES = [None] + list(range(8, 16))
CLIENT_WINDOW_CHOICES = [None, "bare"] + list(range(8, 16))


def _offer_params(snct, cnct, smwb, cmwb):
    params = []
    if snct:
        params.append("server_no_context_takeover")
    if cnct:
        params.append("client_no_context_takeover")
    if smwb is not None:
        params.append("server_max_window_bits=%d" % smwb)
    if cmwb == "bare":
        params.append("client_max_window_bits")
    elif cmwb is not None:
        params.append("client_max_window_bits=%d" % cmwb)
    return params


@pytest.mark.parametrize("snct", [False, True])
@pytest.mark.parametrize("cnct", [False, True])
@pytest.mark.parametrize("smwb", WINDOW_CHOICES)
@pytest.mark.parametrize("cmwb", CLIENT_WINDOW_CHOICES)
@pytest.mark.parametrize("order", ["as-listed", "reversed"])
def test_negotiate_server_accepts_every_valid_combination(snct, cnct, smwb, cmwb, order):
    params = _offer_params(snct, cnct, smwb, cmwb)
    if order == "reversed":
        params.reverse()
    offer = "; ".join(["permessage-deflate"] + params)
    agreed = negotiate_server(offer)
    expected_client_bits = None if cmwb in (None, "bare") else cmwb
    assert agreed == DeflateParams(snct, cnct, smwb, expected_client_bits)
    # The response lists the parameters in one fixed order; a bare
    # client_max_window_bits is not echoed (the server does not limit the client).
    response = "permessage-deflate"
    if snct:
        response += "; server_no_context_takeover"
    if cnct:
        response += "; client_no_context_takeover"
    if smwb is not None:
        response += "; server_max_window_bits=%d" % smwb
    if expected_client_bits is not None:
        response += "; client_max_window_bits=%d" % expected_client_bits
    assert agreed.header_value() == response


@pytest.mark.parametrize("offer, expected", [
    ("permessage-deflate", "permessage-deflate"),
    ("PerMessage-Deflate", "permessage-deflate"),
    ("permessage-deflate;client_max_window_bits", "permessage-deflate"),
    ('permessage-deflate; client_max_window_bits="10"',
     "permessage-deflate; client_max_window_bits=10"),
    ("permessage-deflate ; server_max_window_bits = 12 ",
     "permessage-deflate; server_max_window_bits=12"),
    ("x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover",
     "permessage-deflate; server_no_context_takeover"),
    ("foo; bar=1, permessage-deflate", "permessage-deflate"),
    (", permessage-deflate,", "permessage-deflate"),
    ("permessage-deflate; server_max_window_bits=10, permessage-deflate",
     "permessage-deflate; server_max_window_bits=10"),
])
def test_negotiate_server_header_values(offer, expected):
    assert negotiate_server(offer).header_value() == expected


INVALID_OFFERS = [
    "permessage-deflate; foo",
    "permessage-deflate; foo=1",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
    "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=abc",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=-9",
    "permessage-deflate; server_max_window_bits=100",
    "permessage-deflate; server_max_window_bits=1e1",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=abc",
    "permessage-deflate; client_max_window_bits=0",
    'permessage-deflate; client_max_window_bits="7"',
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover=true",
]


@pytest.mark.parametrize("offer", INVALID_OFFERS)
def test_invalid_offer_alone_is_declined(offer):
    assert negotiate_server(offer) is None


@pytest.mark.parametrize("offer", INVALID_OFFERS)
@pytest.mark.parametrize("fallback, expected", [
    ("permessage-deflate", "permessage-deflate"),
    ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
    ("permessage-deflate; client_no_context_takeover; server_max_window_bits=9",
     "permessage-deflate; client_no_context_takeover; server_max_window_bits=9"),
])
def test_invalid_offer_falls_through_to_the_next(offer, fallback, expected):
    assert negotiate_server(offer + ", " + fallback).header_value() == expected


@pytest.mark.parametrize("header", [
    "permessage-deflate; server_max_window_bits=, permessage-deflate",
    'permessage-deflate; x="a, permessage-deflate',
    'permessage-deflate; server_no_context_takeover="", permessage-deflate',
    "", "x-webkit-deflate-frame", "deflate-frame; no_context_takeover",
    'permessage-deflate; client_max_window_bits="10', "permessage-deflate; a b",
    "permessage deflate", "permessage-deflate; =10",
])
def test_nothing_acceptable_returns_none(header):
    # A header that is malformed as a whole (not just one bad offer) is declined entirely.
    assert negotiate_server(header) is None


def test_parse_extensions():
    assert parse_extensions('a; b; c=1, d; e="2", , f') == [
        ("a", [("b", None), ("c", "1")]), ("d", [("e", "2")]), ("f", [])]
    with pytest.raises(ValueError):
        parse_extensions('a; b="unterminated')
    with pytest.raises(ValueError):
        parse_extensions("a; b=c d")


# -- the client's side of the negotiation ---------------------------------------------------

def test_client_offer():
    assert client_offer() == "permessage-deflate; client_max_window_bits"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_answer_means_no_compression(header):
    assert accept_client_response(header) is None


@pytest.mark.parametrize("snct", [False, True])
@pytest.mark.parametrize("cnct", [False, True])
@pytest.mark.parametrize("smwb", WINDOW_CHOICES)
@pytest.mark.parametrize("cmwb", WINDOW_CHOICES)
def test_client_accepts_every_valid_answer(snct, cnct, smwb, cmwb):
    answer = "; ".join(["permessage-deflate"] + _offer_params(snct, cnct, smwb, cmwb))
    assert accept_client_response(answer) == DeflateParams(snct, cnct, smwb, cmwb)


@pytest.mark.parametrize("answer, message", [
    ("x-webkit-deflate-frame",
     "server accepted an extension that was not offered: x-webkit-deflate-frame"),
    ("permessage-deflate, permessage-deflate",
     "server accepted an extension that was not offered: permessage-deflate, permessage-deflate"),
    ("permessage-deflate, foo", "server accepted an extension that was not offered: "
                                "permessage-deflate, foo"),
    ("permessage-deflate; client_max_window_bits",
     "server answered client_max_window_bits without a value"),
    ("permessage-deflate; foo", "server answered permessage-deflate with unknown parameter foo"),
    ("permessage-deflate; server_max_window_bits=16",
     "server answered permessage-deflate with window bits 16"),
    ("permessage-deflate; client_max_window_bits=7",
     "server answered permessage-deflate with window bits 7"),
    ("permessage-deflate; server_max_window_bits=x",
     "server answered permessage-deflate with window bits 'x'"),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover",
     "server answered permessage-deflate with parameter server_no_context_takeover given twice"),
    ("permessage-deflate; client_no_context_takeover=1",
     "server answered permessage-deflate with client_no_context_takeover takes no value"),
    ('permessage-deflate; a="', "invalid Sec-WebSocket-Extensions from server: "
                                "unterminated quoted string"),
])
def test_client_refuses_bad_answers(answer, message):
    with pytest.raises(HandshakeError) as raised:
        accept_client_response(answer)
    assert str(raised.value) == message


def test_deflate_params_defaults_and_repr():
    params = DeflateParams()
    assert params.header_value() == "permessage-deflate"
    assert params == DeflateParams(False, False, None, None)
    assert params != DeflateParams(server_no_context_takeover=True)
    assert params != "permessage-deflate"
    assert repr(params) == (
        "DeflateParams(server_no_context_takeover=False, client_no_context_takeover=False, "
        "server_max_window_bits=None, client_max_window_bits=None)")


# -- the wire format, against zlib directly -----------------------------------------------------

class ReferenceInflater:
    """RFC 7692 7.2.2 done with zlib alone: append 00 00 ff ff, inflate."""

    def __init__(self, bits=15, reset=False):
        self.bits, self.reset = bits, reset
        self.inflater = zlib.decompressobj(-bits)

    def message(self, payload):
        if self.reset:
            self.inflater = zlib.decompressobj(-self.bits)
        return self.inflater.decompress(payload + TAIL)


class ReferenceDeflater:
    """RFC 7692 7.2.1 done with zlib alone: compress, sync flush, strip 00 00 ff ff."""

    def __init__(self, bits=15, reset=False, level=6):
        self.bits, self.reset, self.level = bits, reset, level
        self.deflater = None

    def message(self, data):
        if self.deflater is None or self.reset:
            self.deflater = zlib.compressobj(self.level, zlib.DEFLATED, -self.bits)
        out = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out[:-4]


def test_rfc7692_hello_exact_bytes_with_context_takeover():
    server = Connection(SERVER, deflate=DeflateParams())
    # RFC 7692 7.2.3.1 and 7.2.3.2: "Hello" then "Hello" again, using the context.
    assert server.send_message("Hello") == b"\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00"
    assert server.send_message("Hello") == b"\xc1\x05\xf2\x00\x11\x00\x00"


def test_rfc7692_hello_without_context_takeover_repeats_itself():
    server = Connection(SERVER, deflate=DeflateParams(server_no_context_takeover=True))
    assert server.send_message("Hello") == b"\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00"
    assert server.send_message("Hello") == b"\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00"


@pytest.mark.parametrize("payload", [
    b"\xf2\x48\xcd\xc9\xc9\x07\x00",                          # 7.2.3.1: compressed
    b"\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00",          # 7.2.3.3: stored block
    b"\xf3\x48\xcd\xc9\xc9\x07\x00\x00",                      # 7.2.3.4: BFINAL set
    b"\xf2\x48\xcd\xc9\xc9\x07\x00\x00\x00\xff\xff\x00",      # sync flush inside, then empty
])
def test_rfc7692_examples_are_read(payload):
    assert Connection(SERVER, deflate=DeflateParams()).receive_data(
        frame(TEXT, payload, rsv=RSV1)) == [Message("Hello")]


def test_rfc7692_fragmented_example():
    # 7.2.3.1: the compressed "Hello" in two fragments, RSV1 on the first only.
    data = (frame(TEXT, b"\xf2\x48\xcd", fin=False, rsv=RSV1)
            + frame(CONTINUATION, b"\xc9\xc9\x07\x00"))
    assert Connection(SERVER, deflate=DeflateParams()).receive_data(data) == [Message("Hello")]


def test_messages_each_ending_with_bfinal_are_all_read():
    # RFC 7692 7.2.3.4 allows a sender to end each message with BFINAL set.
    server = Connection(SERVER, deflate=DeflateParams())
    for text in ["Hello", "world", "Hello again", ""]:
        deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = deflater.compress(text.encode()) + deflater.flush(zlib.Z_FINISH)
        assert server.receive_data(frame(TEXT, payload, rsv=RSV1)) == [Message(text)]


def test_bytes_after_bfinal_are_ignored_not_kept():
    # Found by tests/protocol/test_properties.py: zlib keeps every byte fed to
    # an ended stream in unused_data, so 5 MiB after a BFINAL block in a
    # message limited to 1 KiB used to be held until the message ended.
    server = Connection(SERVER, deflate=DeflateParams(), max_message_size=1024)
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    final = deflater.compress(b"Hello") + deflater.flush(zlib.Z_FINISH)
    assert server.receive_data(frame(TEXT, final, fin=False, rsv=RSV1)) == []
    for _ in range(5):
        assert server.receive_data(frame(CONTINUATION, b"\xaa" * 1024 * 1024, fin=False)) == []
        assert server._codec._decompressor is None
    assert server.receive_data(frame(CONTINUATION, b"\xaa")) == [Message("Hello")]
    assert server.receive_data(frame(TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=RSV1)) == [
        Message("Hello")]


def test_inflater_lets_go_of_the_rest_of_a_bomb():
    # Found by tests/protocol/test_properties.py: after the 1009 the input
    # past the limit stayed in the inflater's unconsumed_tail.
    server = Connection(SERVER, deflate=DeflateParams(), max_message_size=10)
    bomb = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = bomb.compress(bytes(100000)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert server.receive_data(frame(BINARY, payload, rsv=RSV1)) == [
        Failure(1009, "message inflates past the size limit")]
    assert server._codec._decompressor is None


@pytest.mark.parametrize("side", [SERVER, CLIENT])
@pytest.mark.parametrize("params", [DeflateParams(), DeflateParams(True, True)])
def test_empty_message_is_a_single_zero_byte(side, params):
    connection = Connection(side, deflate=params)
    for _ in range(3):  # with and without prior context
        fin, rsv, opcode, key, payload = split_frame(connection.send_message(b""))
        assert (fin, rsv, opcode, payload) == (True, RSV1, BINARY, b"\x00")
        connection.send_message(b"some context " * 10)


def test_empty_compressed_message_is_read():
    server = Connection(SERVER, deflate=DeflateParams())
    assert server.receive_data(frame(TEXT, b"\x00", rsv=RSV1)) == [Message("")]
    assert server.receive_data(frame(BINARY, b"\x02\x00", rsv=RSV1)) == [Message(b"")]


def test_send_without_compression_when_asked():
    server = Connection(SERVER, deflate=DeflateParams())
    assert server.send_message("Hello", compress=False) == b"\x81\x05Hello"


def test_uncompressed_messages_are_read_when_deflate_is_on():
    server = Connection(SERVER, deflate=DeflateParams())
    assert server.receive_data(frame(TEXT, "plain") + frame(BINARY, b"\x00\x01")) == [
        Message("plain"), Message(b"\x00\x01")]


def test_invalid_compressed_data_fails_with_1002():
    events = Connection(SERVER, deflate=DeflateParams()).receive_data(
        frame(BINARY, b"\xff\xff\xff\xff", rsv=RSV1))
    assert len(events) == 1 and events[0].code == 1002
    assert events[0].reason.startswith("invalid compressed data: ")


def test_compressed_invalid_utf8_fails_with_1007():
    payload = ReferenceDeflater().message(b"valid then \xed\xa0\x80 invalid")
    (event,) = Connection(SERVER, deflate=DeflateParams()).receive_data(
        frame(TEXT, payload, rsv=RSV1))
    assert event.code == 1007 and event.reason.startswith("invalid UTF-8 in text message: ")


# -- fragmented compressed messages ------------------------------------------------------------

@pytest.mark.parametrize("pieces", [2, 3, 7])
def test_compressed_fragmented_message(pieces):
    text = "fragmented and compressed " * 40
    payload = ReferenceDeflater().message(text.encode())
    step = len(payload) // pieces + 1
    parts = [payload[i:i + step] for i in range(0, len(payload), step)]
    data = frame(TEXT, parts[0], fin=len(parts) == 1, rsv=RSV1)
    for i, part in enumerate(parts[1:], 1):
        data += frame(PING, b"%d" % i) + frame(CONTINUATION, part, fin=i == len(parts) - 1)
    expected = [Ping(b"%d" % i) for i in range(1, len(parts))] + [Message(text)]
    assert Connection(SERVER, deflate=DeflateParams()).receive_data(data) == expected


def test_compressed_fragmented_message_with_empty_fragments():
    payload = ReferenceDeflater().message(b"abc" * 100)
    data = (frame(BINARY, b"", fin=False, rsv=RSV1) + frame(CONTINUATION, payload, fin=False)
            + frame(CONTINUATION, b""))
    assert Connection(SERVER, deflate=DeflateParams()).receive_data(data) == [
        Message(b"abc" * 100)]


def test_rsv1_on_a_continuation_fails_with_1002():
    payload = ReferenceDeflater().message(b"Hello, Hello, Hello")
    data = (frame(TEXT, payload[:3], fin=False, rsv=RSV1)
            + frame(CONTINUATION, payload[3:], rsv=RSV1))
    assert Connection(SERVER, deflate=DeflateParams()).receive_data(data) == [
        Failure(1002, "RSV1 is only allowed on the first frame of a message")]


def test_uncompressed_fragmented_message_with_deflate_on():
    data = frame(TEXT, "plain ", fin=False) + frame(CONTINUATION, "fragments")
    assert Connection(SERVER, deflate=DeflateParams()).receive_data(data) == [
        Message("plain fragments")]


# -- round trips over many messages -----------------------------------------------------------

_rng = random.Random(7692)
_WORDS = ["".join(_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_rng.randint(2, 9)))
          for _ in range(400)]
CORPUS = " ".join(_rng.choice(_WORDS) for _ in range(60000)).encode("ascii")
assert len(CORPUS) > 2 * 131072


def _messages(count=1000, seed=0):
    """``count`` messages of 16 B to 128 KiB: every power of two twice, the rest small.

    Mostly small ones keep the run fast; the large ones still make the
    sliding window wrap, which is where context takeover goes wrong.
    """
    rng = random.Random(seed)
    sizes = [16 << k for k in range(14)] * 2  # 16 B .. 128 KiB
    sizes += [rng.randint(16, 2048) for _ in range(count - len(sizes))]
    rng.shuffle(sizes)
    messages = []
    for i, size in enumerate(sizes):
        start = rng.randrange(len(CORPUS) - size)
        chunk = CORPUS[start:start + size]
        messages.append(chunk.decode("ascii") if i % 2 else chunk)
    return messages


MESSAGES = _messages()
TAKEOVER = [(False, False), (True, False), (False, True), (True, True)]


def _raw(message):
    return message.encode("utf-8") if isinstance(message, str) else message


def _check_frame(wire, message, bits, masked):
    fin, rsv, opcode, key, payload = split_frame(wire)
    assert fin and opcode == (TEXT if isinstance(message, str) else BINARY)
    assert (key is not None) == masked
    # zlib cannot write an 8-bit window: longer messages go out uncompressed.
    compressed = not (bits == 8 and len(_raw(message)) > 256)
    assert rsv == (RSV1 if compressed else 0)
    return compressed, payload


@pytest.mark.parametrize("snct, cnct", TAKEOVER, ids=["takeover", "server-nct", "client-nct",
                                                      "both-nct"])
@pytest.mark.parametrize("bits", [8, 9, 15])
def test_round_trip_1000_messages(snct, cnct, bits):
    params = DeflateParams(snct, cnct, bits, bits)
    server = Connection(SERVER, deflate=params, max_message_size=None)
    client = Connection(CLIENT, deflate=params, max_message_size=None)
    # What each side sends must inflate with a plain zlib of the agreed window,
    # with a fresh window per message when no_context_takeover was agreed.
    from_client = ReferenceInflater(bits, reset=cnct)
    from_server = ReferenceInflater(bits, reset=snct)
    for message in MESSAGES:
        wire = client.send_message(message)
        compressed, payload = _check_frame(wire, message, bits, masked=True)
        assert (from_client.message(payload) if compressed else payload) == _raw(message)
        assert server.receive_data(wire) == [Message(message)]

        wire = server.send_message(message)
        compressed, payload = _check_frame(wire, message, bits, masked=False)
        assert (from_server.message(payload) if compressed else payload) == _raw(message)
        assert client.receive_data(wire) == [Message(message)]


@pytest.mark.parametrize("snct, cnct", TAKEOVER, ids=["takeover", "server-nct", "client-nct",
                                                      "both-nct"])
@pytest.mark.parametrize("bits", [9, 15])
def test_messages_compressed_by_plain_zlib_are_read(snct, cnct, bits):
    params = DeflateParams(snct, cnct, bits, bits)
    server = Connection(SERVER, deflate=params, max_message_size=None)
    client = Connection(CLIENT, deflate=params, max_message_size=None)
    client_deflater = ReferenceDeflater(bits, reset=cnct)
    server_deflater = ReferenceDeflater(bits, reset=snct)
    for message in MESSAGES[:300]:
        opcode = TEXT if isinstance(message, str) else BINARY
        payload = client_deflater.message(_raw(message))
        assert server.receive_data(frame(opcode, payload, rsv=RSV1)) == [Message(message)]
        payload = server_deflater.message(_raw(message))
        assert client.receive_data(server_frame(opcode, payload, rsv=RSV1)) == [Message(message)]


def test_context_takeover_is_used_when_allowed():
    message = CORPUS[:3000]
    server = Connection(SERVER, deflate=DeflateParams())
    first, second = server.send_message(message), server.send_message(message)
    assert len(second) < len(first) // 10  # the second refers back to the first
    fresh = ReferenceInflater()
    with pytest.raises(zlib.error):  # and cannot be read without the first
        fresh.message(split_frame(second)[4])


@pytest.mark.parametrize("side, params", [
    (SERVER, DeflateParams(server_no_context_takeover=True)),
    (CLIENT, DeflateParams(client_no_context_takeover=True)),
])
def test_no_context_takeover_makes_each_message_stand_alone(side, params):
    connection = Connection(side, deflate=params)
    for message in MESSAGES[:50]:
        fin, rsv, opcode, key, payload = split_frame(connection.send_message(message))
        if rsv:
            assert ReferenceInflater(reset=True).message(payload) == _raw(message)


@pytest.mark.parametrize("side, params", [
    (SERVER, DeflateParams(server_no_context_takeover=True)),
    (CLIENT, DeflateParams(client_no_context_takeover=True)),
    (SERVER, DeflateParams(server_max_window_bits=8)),
])
def test_without_context_takeover_a_message_compresses_the_same_whatever_came_before(
        side, params):
    # One compressor serves every message (flushed with Z_FULL_FLUSH): what it
    # sent before, large or small, must leave no trace in the next message.
    probe = CORPUS[300:500]
    alone = split_frame(Connection(side, deflate=params).send_message(probe))[4]
    connection = Connection(side, deflate=params)
    for before in [probe, CORPUS[:70000], "", CORPUS[100:600], probe * 2]:
        connection.send_message(before)
        fin, rsv, opcode, key, payload = split_frame(connection.send_message(probe))
        assert rsv == RSV1 and payload == alone
        assert ReferenceInflater(reset=True).message(payload) == probe


@pytest.mark.parametrize("bits", range(8, 16))
def test_window_bits_are_honoured_by_the_sender(bits):
    # Every server frame must inflate with a decompressor of exactly the agreed
    # window; a longer back-reference would fail with "invalid distance too far back".
    server = Connection(SERVER, deflate=DeflateParams(server_max_window_bits=bits))
    reference = ReferenceInflater(bits)
    for message in [CORPUS[:70000], CORPUS[1000:1200], CORPUS[:70000], CORPUS[5:200] * 3]:
        fin, rsv, opcode, key, payload = split_frame(server.send_message(message))
        assert (reference.message(payload) if rsv else payload) == message
        assert rsv == (RSV1 if bits > 8 or len(message) <= 256 else 0)


def test_mixed_window_bits_between_the_sides():
    params = DeflateParams(server_max_window_bits=8, client_max_window_bits=15)
    server = Connection(SERVER, deflate=params)
    client = Connection(CLIENT, deflate=params)
    for message in MESSAGES[:100]:
        assert server.receive_data(client.send_message(message)) == [Message(message)]
        assert client.receive_data(server.send_message(message)) == [Message(message)]
