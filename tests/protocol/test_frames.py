"""frames.py: the header layout at every length boundary, masking, partial headers."""

import struct

import pytest

from wsocket.protocol.connection import SERVER, Connection, Message
from wsocket.protocol.frames import (
    CONTROL_OPCODES, DATA_OPCODES, MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE, OP_CONTINUATION,
    OP_PING, OP_PONG, OP_TEXT, apply_mask, parse_header, serialize_frame, serialize_header,
)

from wire_helpers import MASK, chops, ref_mask

MiB = 1024 * 1024
LENGTHS = [0, 1, 125, 126, 127, 128, 65535, 65536, 3 * MiB + 5]
KEYS = [None, MASK, b"\x00\x00\x00\x00", b"\xff\x01\x80\x7f"]


def test_opcode_constants():
    assert (OP_CONTINUATION, OP_TEXT, OP_BINARY) == (0x0, 0x1, 0x2)
    assert (OP_CLOSE, OP_PING, OP_PONG) == (0x8, 0x9, 0xA)
    assert DATA_OPCODES == {0x0, 0x1, 0x2}
    assert CONTROL_OPCODES == {0x8, 0x9, 0xA}
    assert MAX_CONTROL_PAYLOAD == 125


# -- the exact header bytes at each length boundary ---------------------------------

@pytest.mark.parametrize("length, expected", [
    (0, b"\x82\x00"),
    (1, b"\x82\x01"),
    (125, b"\x82\x7d"),
    (126, b"\x82\x7e\x00\x7e"),
    (127, b"\x82\x7e\x00\x7f"),
    (128, b"\x82\x7e\x00\x80"),
    (65535, b"\x82\x7e\xff\xff"),
    (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    (3 * MiB + 5, b"\x82\x7f\x00\x00\x00\x00\x00\x30\x00\x05"),
    (2 ** 63 - 1, b"\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff"),
])
def test_serialize_header_literal_bytes(length, expected):
    assert serialize_header(OP_BINARY, length) == expected


def _hand_header(opcode, length, fin, rsv1, key):
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if key is not None else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    return head + (key or b"")


def _expected_size(length, key):
    return (2 if length < 126 else 4 if length < 65536 else 10) + (4 if key else 0)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("key", KEYS, ids=["unmasked", "rfc-key", "zero-key", "odd-key"])
@pytest.mark.parametrize("opcode, fin, rsv1", [
    (OP_TEXT, True, False), (OP_BINARY, False, True), (OP_CONTINUATION, False, False),
    (OP_CONTINUATION, True, False), (OP_PING, True, False),
])
def test_serialize_header_matches_hand_packed(length, key, opcode, fin, rsv1):
    assert serialize_header(opcode, length, fin, rsv1, key) == _hand_header(
        opcode, length, fin, rsv1, key)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("key", KEYS, ids=["unmasked", "rfc-key", "zero-key", "odd-key"])
def test_parse_header_reads_hand_packed(length, key):
    raw = _hand_header(OP_TEXT, length, True, False, key)
    parsed = parse_header(raw)
    assert parsed is not None
    assert (parsed.fin, parsed.rsv1, parsed.rsv2, parsed.rsv3) == (True, False, False, False)
    assert parsed.opcode == OP_TEXT
    assert parsed.mask == key
    assert parsed.length == length
    assert parsed.size == _expected_size(length, key) == len(raw)


@pytest.mark.parametrize("first_byte", range(256))
def test_parse_header_reads_every_first_byte(first_byte):
    parsed = parse_header(bytes([first_byte, 0x00]))
    assert parsed.fin == bool(first_byte & 0x80)
    assert parsed.rsv1 == bool(first_byte & 0x40)
    assert parsed.rsv2 == bool(first_byte & 0x20)
    assert parsed.rsv3 == bool(first_byte & 0x10)
    assert parsed.opcode == first_byte & 0x0F
    assert parsed.length == 0 and parsed.mask is None and parsed.size == 2


def test_parse_header_uses_the_whole_64_bit_length():
    parsed = parse_header(b"\x82\x7f\x01\x02\x03\x04\x05\x06\x07\x08")
    assert parsed.length == 0x0102030405060708
    # The most significant bit is read as is; rejecting it is the state machine's job.
    assert parse_header(b"\x82\x7f\x80" + b"\x00" * 7).length == 2 ** 63


def test_parse_header_non_minimal_lengths_are_read_as_written():
    # RFC 6455 says the minimal encoding "MUST" be used by senders; readers take the value.
    assert parse_header(b"\x82\x7e\x00\x05").length == 5
    assert parse_header(b"\x82\x7e\x00\x05").size == 4
    assert parse_header(b"\x82\x7f" + struct.pack("!Q", 5)).length == 5


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("key", [None, MASK], ids=["unmasked", "masked"])
def test_partial_header_returns_none(length, key):
    raw = _hand_header(OP_BINARY, length, True, False, key)
    for cut in range(len(raw)):
        assert parse_header(raw[:cut]) is None, cut
        assert parse_header(b"junk" + raw[:cut], 4) is None, cut
    assert parse_header(raw).size == len(raw)


@pytest.mark.parametrize("length", [0, 126, 65536])
def test_parse_header_at_offset_in_bytearray_and_memoryview(length):
    raw = _hand_header(OP_PONG, length, True, False, MASK)
    for buffer in (b"\x00\x01\x02" + raw + b"trailing", bytearray(b"\x00\x01\x02" + raw),
                   memoryview(b"\x00\x01\x02" + raw + b"x")):
        parsed = parse_header(buffer, 3)
        assert (parsed.opcode, parsed.length, parsed.mask, parsed.size) == (
            OP_PONG, length, MASK, len(raw))
        assert isinstance(parsed.mask, bytes)


# -- serialize_frame ---------------------------------------------------------------

@pytest.mark.parametrize("length", LENGTHS[:-1])
def test_serialize_frame_unmasked_is_header_plus_payload(length):
    payload = bytes(i % 251 for i in range(length))
    assert serialize_frame(OP_BINARY, payload) == _hand_header(
        OP_BINARY, length, True, False, None) + payload
    assert serialize_frame(OP_TEXT, payload, fin=False, rsv1=True) == _hand_header(
        OP_TEXT, length, False, True, None) + payload


@pytest.mark.parametrize("length", LENGTHS[:-1])
def test_serialize_frame_masked_uses_a_key_and_masks_the_payload(length):
    payload = bytes(i % 251 for i in range(length))
    data = serialize_frame(OP_BINARY, payload, masked=True)
    size = _expected_size(length, True)
    key = data[size - 4:size]
    assert data[:size] == _hand_header(OP_BINARY, length, True, False, key)
    assert ref_mask(data[size:], key) == payload


def test_serialize_frame_masked_draws_a_fresh_key_each_time():
    keys = {serialize_frame(OP_TEXT, b"x", masked=True)[2:6] for _ in range(8)}
    assert len(keys) > 1


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("opcode", [OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING,
                                    OP_PONG])
@pytest.mark.parametrize("fin", [True, False])
@pytest.mark.parametrize("rsv1", [True, False])
@pytest.mark.parametrize("key", [None, MASK], ids=["unmasked", "masked"])
def test_serialize_then_parse_is_identity(length, opcode, fin, rsv1, key):
    parsed = parse_header(serialize_header(opcode, length, fin, rsv1, key))
    assert (parsed.fin, parsed.rsv1, parsed.rsv2, parsed.rsv3, parsed.opcode, parsed.mask,
            parsed.length) == (fin, rsv1, False, False, opcode, key, length)


def test_frame_header_repr_names_the_fields():
    text = repr(parse_header(b"\xc1\x85" + MASK))
    assert text == "FrameHeader(fin=True, rsv=100, opcode=0x1, mask=%r, length=5)" % MASK


# -- masking -----------------------------------------------------------------------

@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 125, 126, 1000, 65536])
@pytest.mark.parametrize("key", [MASK, b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
                                 b"\x01\x02\x03\x04"])
def test_apply_mask_matches_reference_xor(length, key):
    data = bytes((i * 7 + 3) % 256 for i in range(length))
    assert apply_mask(data, key) == ref_mask(data, key)
    assert apply_mask(apply_mask(data, key), key) == data


def test_apply_mask_of_a_few_mib_matches_reference():
    data = bytes(range(256)) * (2 * MiB // 256) + b"tail!"
    masked = apply_mask(data, MASK)
    assert len(masked) == len(data)
    assert masked == ref_mask(data, MASK)


def test_apply_mask_rfc_example():
    # RFC 6455 5.7: "Hello" masked with 37 fa 21 3d.
    assert apply_mask(b"Hello", MASK) == b"\x7f\x9f\x4d\x51\x58"


def test_apply_mask_keeps_leading_and_trailing_zero_bytes():
    # A big-integer implementation must not drop the zero bytes at either end.
    data = b"\x00\x00\x00\x00abc\x00\x00"
    assert apply_mask(data, b"\x00\x00\x00\x00") == data
    assert apply_mask(MASK * 3, MASK) == bytes(12)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_apply_mask_accepts_bytes_like(kind):
    data = bytes(range(50))
    result = apply_mask(kind(data), MASK)
    assert bytes(result) == ref_mask(data, MASK)


# -- mask offset continuity when one frame's payload arrives in pieces ----------

def _masked_binary_frame(payload, key=MASK):
    return _hand_header(OP_BINARY, len(payload), True, False, key) + ref_mask(payload, key)


@pytest.mark.parametrize("first_cut", range(0, 9))
@pytest.mark.parametrize("second_cut", range(0, 9))
def test_payload_split_at_any_two_offsets_unmasks_correctly(first_cut, second_cut):
    payload = bytes(range(1, 30))  # every byte distinct: a wrong key phase shows
    data = _masked_binary_frame(payload)
    body = len(data) - len(payload)
    a, b = sorted((body + first_cut, body + first_cut + second_cut))
    connection = Connection(SERVER)
    assert connection.receive_data(data[:a]) == []
    assert connection.receive_data(data[a:b]) == ([] if b < len(data) else [Message(payload)])
    if b < len(data):
        assert connection.receive_data(data[b:]) == [Message(payload)]


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 6, 7, 997])
@pytest.mark.parametrize("length", [125, 126, 65536])
def test_payload_in_uneven_pieces_unmasks_correctly(piece, length):
    payload = bytes((i * 13 + i // 256) % 256 for i in range(length))
    data = _masked_binary_frame(payload, b"\x9a\x01\xf3\x44")
    connection = Connection(SERVER, max_message_size=None)
    events = []
    for chunk in chops(data, piece):
        events.extend(connection.receive_data(chunk))
    assert events == [Message(payload)]


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 8, 1001])
def test_the_two_reference_xors_of_the_tests_agree(length):
    # wire_helpers.fast_mask builds big masked frames for the tests; it must
    # agree with the literal RFC loop it stands in for.
    from wire_helpers import fast_mask
    data = bytes((i * 11) % 256 for i in range(length))
    assert fast_mask(data, b"\x12\x34\x56\x78") == ref_mask(data, b"\x12\x34\x56\x78")
