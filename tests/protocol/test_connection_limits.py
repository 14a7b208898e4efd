"""Connection: max_message_size (Autobahn group 9 sizes, compression bombs)."""

import time
import tracemalloc
import zlib

import pytest

from wsocket.protocol.connection import (
    DEFAULT_MAX_MESSAGE_SIZE, SERVER, Connection, Failure, Message, Ping,
)
from wsocket.protocol.deflate import DeflateParams

from wire_helpers import (
    BINARY, CONTINUATION, MASK, PING, TEXT, chops, feed, frame, header, periodic_masked,
    periodic_payload,
)

MiB = 1024 * 1024


def too_big(limit):
    return Failure(1009, "message of more than %d bytes (the limit)" % limit)


INFLATES_TOO_BIG = Failure(1009, "message inflates past the size limit")


def test_default_limit_is_one_mib():
    assert DEFAULT_MAX_MESSAGE_SIZE == MiB
    assert Connection(SERVER).max_message_size == MiB


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_frame_over_the_limit_fails_at_its_header(opcode):
    connection = Connection(SERVER, max_message_size=1000)
    # Only the header: the payload never has to arrive for the verdict.
    assert connection.receive_data(header(opcode, 1001, key=MASK)) == [too_big(1000)]


def test_default_limit_fails_at_the_header_of_a_huge_frame():
    connection = Connection(SERVER)
    assert connection.receive_data(header(BINARY, MiB + 1, key=MASK)) == [too_big(MiB)]
    assert Connection(SERVER).receive_data(header(BINARY, 2 ** 62, key=MASK)) == [too_big(MiB)]


@pytest.mark.parametrize("limit", [0, 1, 125, 1000, 65536])
def test_message_of_exactly_the_limit_passes(limit):
    connection = Connection(SERVER, max_message_size=limit)
    payload = periodic_payload(limit)
    assert connection.receive_data(frame(BINARY, payload)) == [Message(payload)]
    assert Connection(SERVER, max_message_size=limit).receive_data(
        header(BINARY, limit + 1, key=MASK)) == [too_big(limit)]


def test_limit_across_fragments():
    connection = Connection(SERVER, max_message_size=1000)
    assert connection.receive_data(frame(TEXT, "a" * 600, fin=False)) == []
    assert connection.receive_data(frame(PING, b"still fine")) == [Ping(b"still fine")]
    assert connection.receive_data(header(CONTINUATION, 401, key=MASK)) == [too_big(1000)]


def test_fragments_adding_up_to_exactly_the_limit():
    connection = Connection(SERVER, max_message_size=1000)
    data = (frame(TEXT, "a" * 600, fin=False) + frame(CONTINUATION, "b" * 399, fin=False)
            + frame(CONTINUATION, "c"))
    assert connection.receive_data(data) == [Message("a" * 600 + "b" * 399 + "c")]


def test_limit_applies_to_each_message_not_the_connection():
    # Two messages of 60% of the limit each: the second must not count the first.
    connection = Connection(SERVER, max_message_size=1000)
    for payload in (b"x" * 600, b"y" * 600, b"z" * 1000):
        assert connection.receive_data(frame(BINARY, payload)) == [Message(payload)]


def test_limit_applies_to_each_fragmented_message():
    connection = Connection(SERVER, max_message_size=1000)
    for _ in range(3):
        data = frame(BINARY, b"x" * 500, fin=False) + frame(CONTINUATION, b"y" * 500)
        assert connection.receive_data(data) == [Message(b"x" * 500 + b"y" * 500)]


def test_failure_comes_after_the_messages_before_it():
    connection = Connection(SERVER, max_message_size=10)
    data = frame(TEXT, "short") + header(TEXT, 11, key=MASK)
    assert connection.receive_data(data) == [Message("short"), too_big(10)]


def test_no_limit_allows_16_mib():
    size = 16 * MiB
    connection = Connection(SERVER, max_message_size=None)
    per_piece = feed(connection, [header(BINARY, size, key=MASK),
                                  *chops(periodic_masked(size), 4 * MiB + 3)])
    assert per_piece[:-1] == [[]] * (len(per_piece) - 1)
    (message,) = per_piece[-1]
    assert message == Message(periodic_payload(size))


def _four_mib_in_64_byte_fragments(extra=b""):
    count = 4 * MiB // 64
    body = frame(CONTINUATION, periodic_payload(64), fin=False)
    return (frame(BINARY, periodic_payload(64), fin=False) + body * (count - 2)
            + frame(CONTINUATION, periodic_payload(64) + extra))


@pytest.mark.parametrize("piece", [None, 997, 65536], ids=["whole", "chops-997", "chops-64k"])
def test_4_mib_in_64_byte_fragments_with_the_limit_at_4_mib(piece):
    data = _four_mib_in_64_byte_fragments()
    connection = Connection(SERVER, max_message_size=4 * MiB)
    events = [e for events in feed(connection, chops(data, piece or len(data))) for e in events]
    assert events == [Message(periodic_payload(64) * (4 * MiB // 64))]


def test_4_mib_plus_one_byte_in_64_byte_fragments_fails_on_the_last_header():
    data = _four_mib_in_64_byte_fragments(extra=b"!")
    connection = Connection(SERVER, max_message_size=4 * MiB)
    assert connection.receive_data(data) == [too_big(4 * MiB)]


# -- compressed messages: the inflated size is what counts -----------------------------

def _deflate(data, bits=15):
    """Raw DEFLATE as RFC 7692 sends it, by zlib directly (not our codec)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -bits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def _bomb(mib):
    """A raw DEFLATE stream inflating to ``mib`` MiB of zeros (~1 KB per MiB).

    One MiB is compressed once with a sync flush; the segment only refers to
    itself, so repeating it is a valid stream of ``mib`` times the output.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return segment * mib


def test_bomb_helper_is_what_it_claims():
    bomb = _bomb(3)
    assert zlib.decompressobj(-15).decompress(bomb) == bytes(3 * MiB)


@pytest.mark.parametrize("limit, size", [(1000, 1000), (MiB, MiB), (10, 0), (0, 0)])
def test_compressed_message_inflating_to_the_limit_passes(limit, size):
    connection = Connection(SERVER, deflate=DeflateParams(), max_message_size=limit)
    payload = periodic_payload(size)
    assert connection.receive_data(frame(BINARY, _deflate(payload), rsv=4)) == [Message(payload)]


@pytest.mark.parametrize("limit", [0, 1000, MiB])
def test_compressed_message_inflating_past_the_limit_fails(limit):
    connection = Connection(SERVER, deflate=DeflateParams(), max_message_size=limit)
    compressed = _deflate(periodic_payload(limit + 1))
    assert len(compressed) < limit + 1 or limit == 0
    assert connection.receive_data(frame(BINARY, compressed, rsv=4)) == [INFLATES_TOO_BIG]


def test_compressed_header_length_is_not_the_limit():
    # 2 KB on the wire is fine with a 1000-byte limit if it inflates to less.
    # Stored (uncompressed) deflate blocks make the wire bigger than the message.
    connection = Connection(SERVER, deflate=DeflateParams(), max_message_size=1000)
    compressor = zlib.compressobj(0, zlib.DEFLATED, -15)
    data = bytes(range(256)) * 3
    wire = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    # Empty stored blocks (00 00 00 ff ff) pad it past 1000 bytes; the last
    # one loses its 00 00 ff ff, which the receiver appends (RFC 7692 7.2.2).
    wire = (wire + b"\x00\x00\x00\xff\xff" * 250)[:-4]
    assert len(wire) > 1000
    assert connection.receive_data(frame(BINARY, wire, rsv=4)) == [Message(data)]


def test_compressed_limit_across_fragments():
    connection = Connection(SERVER, deflate=DeflateParams(), max_message_size=1000)
    wire = _deflate(b"a" * 1001)
    half = len(wire) // 2
    data = frame(TEXT, wire[:half], rsv=4, fin=False) + frame(CONTINUATION, wire[half:])
    assert connection.receive_data(data) == [INFLATES_TOO_BIG]


def test_compressed_messages_are_limited_one_by_one():
    connection = Connection(SERVER, deflate=DeflateParams(), max_message_size=1000)
    for _ in range(3):
        assert connection.receive_data(frame(BINARY, _deflate(b"q" * 700), rsv=4)) == [
            Message(b"q" * 700)]


def test_compression_bomb_of_100_mib_fails_quickly_without_allocating_it():
    bomb = _bomb(100)  # ~100 KB on the wire (DEFLATE tops out near 1:1000)
    assert len(bomb) < 150_000
    data = frame(BINARY, bomb, rsv=4)
    connection = Connection(SERVER, deflate=DeflateParams(), max_message_size=MiB)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        events = connection.receive_data(data)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert events == [INFLATES_TOO_BIG]
    assert elapsed < 1.0
    assert peak < 8 * MiB  # the wire bytes and ~1 MiB of output, never 100 MiB


def test_compression_bomb_fails_at_the_chunk_that_passes_the_limit():
    bomb = _bomb(100)
    data = frame(BINARY, bomb, rsv=4)
    connection = Connection(SERVER, deflate=DeflateParams(), max_message_size=MiB)
    # About 1 KB of DEFLATE inflates to 1 MiB: the failure comes within the
    # first few 997-byte chops, long before the frame's ~100 KB have arrived.
    per_piece = feed(connection, chops(data, 997))
    failing = [i for i, events in enumerate(per_piece) if events]
    assert per_piece[failing[0]] == [INFLATES_TOO_BIG]
    assert failing == [failing[0]]
    assert failing[0] * 997 < 4000


def test_no_limit_inflates_16_mib():
    connection = Connection(SERVER, deflate=DeflateParams(), max_message_size=None)
    assert connection.receive_data(frame(BINARY, _bomb(16), rsv=4)) == [Message(bytes(16 * MiB))]


# -- fragment floods -------------------------------------------------------------

def _continuations(count, payload=b""):
    return b"".join(frame(0x0, payload, fin=False) for _ in range(count))


def test_fragment_limit_follows_the_message_size_limit():
    assert Connection(SERVER, max_message_size=1024 * 1024).max_fragments == 16384
    assert Connection(SERVER, max_message_size=100).max_fragments == 1024
    assert Connection(SERVER, max_message_size=None).max_fragments == 1024 * 1024


def test_flood_of_empty_fragments_fails_with_1009():
    connection = Connection(SERVER, max_message_size=1024 * 1024)
    events = connection.receive_data(frame(0x1, b"a", fin=False) + _continuations(16383))
    assert events == []  # 16,384 fragments: still allowed
    events = connection.receive_data(_continuations(1))
    assert events == [Failure(1009, "message in more than 16384 fragments (the limit)")]


def test_four_mib_in_64_byte_fragments_passes_with_a_4_mib_limit():
    """Autobahn case 9.3.1 with the size limit at 4 MiB."""
    connection = Connection(SERVER, max_message_size=4 * 1024 * 1024)
    chunk = b"*" * 64
    count = 4 * 1024 * 1024 // 64
    data = frame(0x2, chunk, fin=False) + _continuations(count - 2, chunk) + frame(0x0, chunk)
    assert connection.receive_data(data) == [Message(b"*" * (4 * 1024 * 1024))]


def test_explicit_fragment_limit():
    connection = Connection(SERVER, max_fragments=3)
    events = connection.receive_data(frame(0x1, b"a", fin=False) + _continuations(2, b"b")
                                     + frame(0x0, b"c"))
    assert events == [Failure(1009, "message in more than 3 fragments (the limit)")]
    with pytest.raises(ValueError, match="max_fragments must be None or at least 1"):
        Connection(SERVER, max_fragments=0)
