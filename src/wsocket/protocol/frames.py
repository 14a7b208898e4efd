"""Frames of RFC 6455 section 5: opcodes, the header layout, masking.

Nothing here keeps state; ``connection.py`` builds the state machine on top.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar, Union, overload

if TYPE_CHECKING:
    from types import ModuleType

# What frames are read from: bytes, or a receive buffer.
Buffer = Union[bytes, bytearray, memoryview]
_Event = TypeVar("_Event")

__all__ = [
    "OP_CONTINUATION", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG",
    "DATA_OPCODES", "CONTROL_OPCODES", "FrameHeader", "parse_header",
    "serialize_header", "serialize_frame", "apply_mask", "MAX_CONTROL_PAYLOAD",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

DATA_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY))
CONTROL_OPCODES = frozenset((OP_CLOSE, OP_PING, OP_PONG))

# RFC 6455 5.5: control frames carry at most 125 bytes and are never fragmented.
MAX_CONTROL_PAYLOAD = 125

_unpack_16 = struct.Struct("!H").unpack_from
_unpack_64 = struct.Struct("!Q").unpack_from
pack_short_header = struct.Struct("!BB").pack  # the 2 header bytes of a short unmasked frame
_pack_medium = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


class FrameHeader:
    """The fixed part of a frame, as read off the wire."""

    __slots__ = ("fin", "rsv1", "rsv2", "rsv3", "opcode", "mask", "length", "size")

    def __init__(self, fin: bool, rsv1: bool, rsv2: bool, rsv3: bool, opcode: int,
                 mask: bytes | None, length: int, size: int) -> None:
        self.fin = fin
        self.rsv1 = rsv1
        self.rsv2 = rsv2
        self.rsv3 = rsv3
        self.opcode = opcode
        self.mask = mask  # the 4-byte masking key, or None for an unmasked frame
        self.length = length  # payload length
        self.size = size  # header length in bytes (2 to 14)

    def __repr__(self) -> str:
        return "FrameHeader(fin=%r, rsv=%d%d%d, opcode=%#x, mask=%r, length=%d)" % (
            self.fin, self.rsv1, self.rsv2, self.rsv3, self.opcode, self.mask, self.length)


def parse_header(buffer: Buffer, offset: int = 0) -> FrameHeader | None:
    """Read a frame header from ``buffer`` at ``offset``.

    Returns a ``FrameHeader``, or None when the buffer does not yet hold the
    whole header. Judging the header (reserved bits, opcodes, masking) is the
    state machine's job: this only reads the layout.
    """
    available = len(buffer) - offset
    if available < 2:
        return None
    first = buffer[offset]
    second = buffer[offset + 1]
    length = second & 0x7F
    size = 2
    if length == 126:
        size = 4
        if available < size:
            return None
        length = _unpack_16(buffer, offset + 2)[0]
    elif length == 127:
        size = 10
        if available < size:
            return None
        length = _unpack_64(buffer, offset + 2)[0]
    mask = None
    if second & 0x80:
        if available < size + 4:
            return None
        mask = bytes(buffer[offset + size:offset + size + 4])
        size += 4
    return FrameHeader(
        bool(first & 0x80), bool(first & 0x40), bool(first & 0x20), bool(first & 0x10),
        first & 0x0F, mask, length, size)


def serialize_header(opcode: int, length: int, fin: bool = True, rsv1: bool = False,
                     mask: bytes | None = None) -> bytes:
    """The header bytes of a frame whose payload is ``length`` bytes long."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        header = pack_short_header(first, mask_bit | length)
    elif length < 0x10000:
        header = _pack_medium(first, mask_bit | 126, length)
    else:
        header = _pack_long(first, mask_bit | 127, length)
    if mask is not None:
        header += mask
    return header


def serialize_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False,
                    masked: bool = False) -> bytes:
    """A whole frame as bytes; ``masked`` frames get a fresh random key (client side)."""
    if masked:
        mask = os.urandom(4)
        return serialize_header(opcode, len(payload), fin, rsv1, mask) + apply_mask(payload, mask)
    return serialize_header(opcode, len(payload), fin, rsv1) + payload


def _apply_mask_python(data: Buffer, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 5.3).

    One big-integer XOR does the whole buffer in C, instead of a Python loop
    over the bytes.
    """
    length = len(data)
    if not length:
        return b""
    repeated = mask * ((length + 3) >> 2)
    if len(repeated) != length:
        repeated = repeated[:length]
    value = int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(length, "little")


def _short_frame_python(first_byte: int, payload: bytes) -> bytes:
    """The unmasked frame of a payload under 126 bytes: ``first_byte``, the length, the payload.

    The pure Python twin of ``_speedups.short_frame`` (the usual server send).
    """
    if len(payload) >= 126:
        raise ValueError("short_frame: a short frame carries at most 125 bytes, not %d"
                         % len(payload))
    if not 0 <= first_byte <= 255:
        raise ValueError("short_frame: the first byte must be in 0..255")
    return pack_short_header(first_byte, len(payload)) + payload


def load_accelerator() -> ModuleType | None:
    """The C module ``_speedups`` when it was built, unless WSOCKET_NO_SPEEDUPS is set."""
    if os.environ.get("WSOCKET_NO_SPEEDUPS"):
        return None
    try:
        from .. import _speedups
    except ImportError:
        return None
    return _speedups


class ParseMessages(Protocol):
    """The C fast path's signature (``_speedups.parse_messages``, see ``_speedups.pyi``).

    From ``position``, the run of small whole text and binary messages as
    ``message_class(data)`` each, or as ``data`` itself for None (compressed
    ones through ``inflate``);
    returns them, the position after them and the error that ended the run.
    """

    @overload
    def __call__(self, buffer: Buffer, position: int, masked: bool, limit: int,
                 message_class: None, inflate: Callable[[bytes, bool], Any] | None, /
                 ) -> tuple[list[Any], int, BaseException | None]: ...
    @overload
    def __call__(self, buffer: Buffer, position: int, masked: bool, limit: int,
                 message_class: Callable[[Any], _Event],
                 inflate: Callable[[bytes, bool], Any] | None, /
                 ) -> tuple[list[_Event], int, BaseException | None]: ...


_accelerator = load_accelerator()
apply_mask: Callable[[Buffer, bytes], bytes] = (
    _accelerator.apply_mask if _accelerator is not None else _apply_mask_python)
SPEEDUPS = apply_mask is not _apply_mask_python  # True when the C accelerator is in use
# The sending fast path: one short unmasked frame (connection.py's send_message).
short_frame: Callable[[int, bytes], bytes] = (
    _accelerator.short_frame if _accelerator is not None else _short_frame_python)
# The receiving fast path, or None, and connection.py reads those frames one at a time.
parse_messages: ParseMessages | None = getattr(_accelerator, "parse_messages", None)

if TYPE_CHECKING:
    # The stub of the C module must match what is expected of it here.
    from .. import _speedups

    _check_apply_mask: Callable[[Buffer, bytes], bytes] = _speedups.apply_mask
    _check_parse_messages: ParseMessages = _speedups.parse_messages
    _check_short_frame: Callable[[int, bytes], bytes] = _speedups.short_frame
