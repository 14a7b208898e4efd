"""Independent builders for the protocol tests.

Nothing here uses the code under test: frames are packed by hand with
``struct``, masking is a plain Python XOR loop, so a test that compares the
library's output with these is not comparing the library with itself.
"""

import struct

# RFC 6455 5.7 uses this key in its masked examples.
MASK = b"\x37\xfa\x21\x3d"

TEXT, BINARY, CONTINUATION = 0x1, 0x2, 0x0
CLOSE, PING, PONG = 0x8, 0x9, 0xA


def ref_mask(data, key):
    """RFC 6455 5.3, literally: octet i is XORed with key[i mod 4]."""
    return bytes(octet ^ key[i % 4] for i, octet in enumerate(data))


def fast_mask(data, key):
    """The same XOR as ``ref_mask``, fast enough for MiB: one byte table per key octet."""
    out = bytearray(len(data))
    for i in range(4):
        table = bytes(octet ^ key[i] for octet in range(256))
        out[i::4] = bytes(data[i::4]).translate(table)
    return bytes(out)


def periodic_payload(length, pattern=b"WsOk"):
    """A payload of period 4, so its masked form is cheap to build by hand at any size."""
    assert len(pattern) == 4
    return (pattern * (length // 4 + 1))[:length]


def periodic_masked(length, pattern=b"WsOk", key=MASK):
    """``ref_mask(periodic_payload(length, pattern), key)`` without a byte loop."""
    masked_pattern = bytes(p ^ k for p, k in zip(pattern, key))
    return (masked_pattern * (length // 4 + 1))[:length]


def header(opcode, length, fin=True, rsv=0, key=None):
    """A frame header packed by hand. ``rsv`` is the 3-bit RSV1..RSV3 field (4 = RSV1)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if key is not None else 0
    if length <= 125:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length <= 0xFFFF:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    return head + (key if key is not None else b"")


def frame(opcode, payload=b"", fin=True, rsv=0, key=MASK):
    """A whole frame; masked with ``key`` (client to server) unless key is None."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if key is None:
        return header(opcode, len(payload), fin, rsv) + payload
    return header(opcode, len(payload), fin, rsv, key) + fast_mask(payload, key)


def server_frame(opcode, payload=b"", fin=True, rsv=0):
    """An unmasked frame, as a server sends it."""
    return frame(opcode, payload, fin, rsv, key=None)


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


def chops(data, size):
    """``data`` cut into pieces of ``size`` bytes (the last one shorter)."""
    return [data[i:i + size] for i in range(0, len(data), size)]


def feed(connection, pieces):
    """Feed pieces one call at a time; returns the list of events of each call."""
    return [connection.receive_data(piece) for piece in pieces]


def feed_all(connection, pieces):
    """Feed pieces one call at a time; returns all events, flattened."""
    events = []
    for piece in pieces:
        events.extend(connection.receive_data(piece))
    return events


def split_frame(data):
    """Parse one whole frame by hand: (fin, rsv, opcode, key, payload unmasked)."""
    first, second = data[0], data[1]
    length = second & 0x7F
    position = 2
    if length == 126:
        (length,) = struct.unpack("!H", data[2:4])
        position = 4
    elif length == 127:
        (length,) = struct.unpack("!Q", data[2:10])
        position = 10
    key = None
    if second & 0x80:
        key = data[position:position + 4]
        position += 4
    payload = data[position:position + length]
    assert len(payload) == length and len(data) == position + length, "not exactly one frame"
    if key is not None:
        payload = fast_mask(payload, key)
    return bool(first & 0x80), (first >> 4) & 0x7, first & 0x0F, key, payload
