"""permessage-deflate (RFC 7692): negotiation and the per-message codec.

The server accepts the first offer it can honour exactly and declines the
rest; the client offers one configuration and checks that the answer stays
within it. ``DeflateCodec`` then compresses what one side sends and inflates
what it receives, each direction with its own context-takeover rule.
"""

from __future__ import annotations

import zlib
from typing import Any, Optional

from ..errors import FrameTooLargeException, HandshakeError, ProtocolError

# A parsed extension: its name and its parameters, each with its value or None.
Extension = tuple[str, list[tuple[str, Optional[str]]]]

__all__ = [
    "EXTENSION_NAME", "DeflateParams", "DeflateCodec", "parse_extensions",
    "negotiate_server", "client_offer", "accept_client_response",
]

EXTENSION_NAME = "permessage-deflate"
_SYNC_TAIL = b"\x00\x00\xff\xff"
# What our compressor uses by default: a 4 KiB window and memLevel 5 keep a
# connection's compressor near 64 KiB instead of about 320 KiB at 15 and 8,
# for a ratio that differs little on the messages WebSockets carry.
DEFAULT_WINDOW_BITS = 12
DEFAULT_MEM_LEVEL = 5
# zlib's own default: what the field uses. 1 compresses about twice as fast
# for 8% to 23% more bytes on JSON and text (README: Performance).
DEFAULT_COMPRESSION_LEVEL = 6


def check_compression_level(level: object) -> None:
    """Raise ValueError unless ``level`` is a zlib level that compresses (1 to 9)."""
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 9:
        raise ValueError("compression_level must be a whole number from 1 (fastest) to 9 "
                         "(smallest output), not %r" % (level,))


_PARAM_NAMES = (
    "server_no_context_takeover", "client_no_context_takeover",
    "server_max_window_bits", "client_max_window_bits",
)


class DeflateParams:
    """What both sides agreed on; a window of None means the default 15."""

    __slots__ = _PARAM_NAMES

    def __init__(self, server_no_context_takeover: bool = False,
                 client_no_context_takeover: bool = False,
                 server_max_window_bits: int | None = None,
                 client_max_window_bits: int | None = None) -> None:
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits

    def header_value(self) -> str:
        """The extension as it is written in Sec-WebSocket-Extensions."""
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits is not None:
            parts.append("server_max_window_bits=%d" % self.server_max_window_bits)
        if self.client_max_window_bits is not None:
            parts.append("client_max_window_bits=%d" % self.client_max_window_bits)
        return "; ".join(parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeflateParams) and all(
            getattr(self, name) == getattr(other, name) for name in _PARAM_NAMES)

    def __repr__(self) -> str:
        return "DeflateParams(%s)" % ", ".join(
            "%s=%r" % (name, getattr(self, name)) for name in _PARAM_NAMES)


def parse_extensions(header: str) -> list[Extension]:
    """Parse a Sec-WebSocket-Extensions value into ``[(name, [(param, value)])]``.

    ``value`` is None for a parameter without one; quoted strings are
    unquoted (RFC 6455 9.1). Raises ``ValueError`` on a malformed header.
    """
    extensions: list[Extension] = []
    for element in _split_outside_quotes(header, ","):
        element = element.strip()
        if not element:
            continue  # RFC 7230 list rule: empty elements are allowed
        pieces = _split_outside_quotes(element, ";")
        name = pieces[0].strip()
        if not _is_token(name):
            raise ValueError("invalid extension name %r" % name)
        params: list[tuple[str, str | None]] = []
        for piece in pieces[1:]:
            key, sep, value = piece.partition("=")
            key = key.strip()
            if not _is_token(key):
                raise ValueError("invalid extension parameter %r" % piece.strip())
            if not sep:
                params.append((key, None))
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"')
            if not _is_token(value):
                raise ValueError("invalid value for extension parameter %r" % key)
            params.append((key, value))
        extensions.append((name, params))
    return extensions


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise ValueError("unterminated quoted string")
    parts.append("".join(current))
    return parts


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789"
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_token(text: str) -> bool:
    return bool(text) and all(char in _TOKEN_CHARS for char in text)


def _window_bits(value: str | None) -> int:
    """A max_window_bits value must be a plain integer from 8 to 15."""
    if value is None or not value.isdigit() or len(value) > 2:
        raise ValueError("window bits %r" % value)
    bits = int(value)
    if not 8 <= bits <= 15:
        raise ValueError("window bits %d" % bits)
    return bits


def _read_offer(params: list[tuple[str, str | None]]) -> dict[str, Any]:
    """Turn one offer's parameters into a dict, or raise ValueError.

    A ``*_no_context_takeover`` maps to True, a window size to its bits, and
    a bare ``client_max_window_bits`` (any window is fine) to True.
    """
    # DeflateParams' keyword arguments, but for a bare client_max_window_bits (True)
    seen: dict[str, Any] = {}
    for key, value in params:
        if key not in _PARAM_NAMES:
            raise ValueError("unknown parameter %s" % key)
        if key in seen:
            raise ValueError("parameter %s given twice" % key)
        if key.endswith("no_context_takeover"):
            if value is not None:
                raise ValueError("%s takes no value" % key)
            seen[key] = True
        elif key == "client_max_window_bits" and value is None:
            seen[key] = True  # "I can honour any window you ask for"
        else:
            seen[key] = _window_bits(value)
    return seen


def negotiate_server(header: str) -> DeflateParams | None:
    """Choose the first acceptable permessage-deflate offer of the client.

    Returns the agreed ``DeflateParams`` (its ``header_value()`` goes into the
    101 response), or None when nothing could be accepted: a malformed or
    unknown offer is declined, never answered with an error, so the
    connection still opens without compression.
    """
    try:
        extensions = parse_extensions(header)
    except ValueError:
        return None
    for name, params in extensions:
        if name.lower() != EXTENSION_NAME:
            continue
        try:
            offer = _read_offer(params)
        except ValueError:
            continue
        client_bits = offer.get("client_max_window_bits")
        return DeflateParams(
            server_no_context_takeover=offer.get("server_no_context_takeover", False),
            client_no_context_takeover=offer.get("client_no_context_takeover", False),
            server_max_window_bits=offer.get("server_max_window_bits"),
            # A bare client_max_window_bits only says the client could limit
            # its window; the server need not ask it to.
            client_max_window_bits=None if client_bits is True else client_bits,
        )
    return None


def client_offer() -> str:
    """The offer a wsocket client makes: everything default, any window accepted."""
    return EXTENSION_NAME + "; client_max_window_bits"


def accept_client_response(header: str | None) -> DeflateParams | None:
    """Check the server's Sec-WebSocket-Extensions answer to ``client_offer()``.

    Returns the agreed ``DeflateParams`` or None when the server declined.
    Raises ``HandshakeError`` when it answered with anything we did not offer.
    """
    if header is None or not header.strip():
        return None
    try:
        extensions = parse_extensions(header)
    except ValueError as error:
        raise HandshakeError("invalid Sec-WebSocket-Extensions from server: %s" % error) from None
    if len(extensions) != 1 or extensions[0][0].lower() != EXTENSION_NAME:
        raise HandshakeError("server accepted an extension that was not offered: %s" % header)
    try:
        agreed = _read_offer(extensions[0][1])
    except ValueError as error:
        raise HandshakeError("server answered permessage-deflate with %s" % error) from None
    if agreed.get("client_max_window_bits") is True:
        raise HandshakeError("server answered client_max_window_bits without a value")
    return DeflateParams(**agreed)


class DeflateCodec:
    """Compresses outgoing and inflates incoming messages for one side.

    ``side`` is "server" or "client"; the parameters named after our side
    rule what we send, the others what we receive.
    """

    def __init__(self, params: DeflateParams, side: str,
                 compress_level: int = DEFAULT_COMPRESSION_LEVEL,
                 mem_level: int = DEFAULT_MEM_LEVEL,
                 window_bits: int = DEFAULT_WINDOW_BITS) -> None:
        ours, theirs = ("server", "client") if side == "server" else ("client", "server")
        self._send_reset = getattr(params, ours + "_no_context_takeover")
        self._receive_reset = getattr(params, theirs + "_no_context_takeover")
        # Any window up to the agreed one is ours to choose: the peer inflates
        # with the agreed (larger) one, which reads a smaller one's output.
        send_bits = min(getattr(params, ours + "_max_window_bits") or 15, window_bits)
        # zlib cannot write a raw deflate stream with an 8-bit window; a
        # 9-bit compressor that forgets the past at each message (as without
        # context takeover) never looks back further than the message itself,
        # so it is safe for messages of at most 256 bytes. Longer ones go out
        # uncompressed, which RFC 7692 always allows.
        self._send_limit = 256 if send_bits == 8 else None
        if send_bits == 8:
            self._send_reset = True
        self._send_bits = max(send_bits, 9)
        self._level = compress_level
        self._mem_level = mem_level
        # Without context takeover each message must stand alone. Z_FULL_FLUSH
        # ends a message as Z_SYNC_FLUSH does and also makes the compressor
        # forget what came before (zlib's own restart point), so one compressor
        # serves every message: the same bytes as a new compressor for each,
        # without allocating and setting up one (about 40 KiB) per message.
        self._flush_mode = zlib.Z_FULL_FLUSH if self._send_reset else zlib.Z_SYNC_FLUSH
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        self._stream_ended = False  # the message being received had a BFINAL block

    def compress(self, data: bytes) -> bytes | None:
        """The compressed payload of one message, or None to send it as is."""
        if self._send_limit is not None and len(data) > self._send_limit:
            return None
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self._level, zlib.DEFLATED, -self._send_bits, self._mem_level)
        try:
            compressed = compressor.compress(data) + compressor.flush(self._flush_mode)
        except BaseException:
            # (MemoryError, say) The compressor may hold part of a message
            # the peer never gets: the next message starts with a fresh one.
            self._compressor = None
            raise
        if compressed.endswith(_SYNC_TAIL):
            compressed = compressed[:-4]
        # RFC 7692 7.2.3.6: an empty message is sent as a single empty block.
        return compressed or b"\x00"

    def decompress(self, chunk: bytes, limit: int | None) -> bytes:
        """Inflate part of a received message; ``limit`` caps the output size.

        Raises ``FrameTooLargeException`` as soon as the output would pass
        ``limit`` (None: no limit), so a compression bomb costs no memory.
        """
        if self._stream_ended:
            # A BFINAL block ended this message's DEFLATE stream (RFC 7692
            # 7.2.3.4); whatever follows it in the message is ignored (the
            # RFC's own example has a byte there), and not kept either.
            return b""
        if self._decompressor is None:
            # Inflating with the largest window reads a stream written with
            # any smaller one, including peers that round 8 bits up to 9.
            self._decompressor = zlib.decompressobj(-15)
        try:
            output = self._decompressor.decompress(chunk, 0 if limit is None else limit + 1)
        except zlib.error as error:
            self._decompressor = None
            raise ProtocolError("invalid compressed data: %s" % error) from None
        if self._decompressor.eof:
            # An ended decompressor keeps every later byte in unused_data:
            # a peer could make it hold a message of any size.
            self._stream_ended = True
            self._decompressor = None
        if limit is not None and len(output) > limit:
            # The rest of the chunk waits in unconsumed_tail: let it go.
            self._decompressor = None
            raise FrameTooLargeException("message inflates past the size limit")
        return output

    def inflate_message(self, payload: bytes, limit: int | None) -> bytes:
        """Inflate a message that came whole, in one frame.

        The same as ``decompress`` then ``finish_message``, in one zlib call
        (and written out here rather than calling them: once per message).
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = zlib.decompressobj(-15)  # the largest window: see decompress()
        try:
            output = decompressor.decompress(payload + _SYNC_TAIL,
                                             0 if limit is None else limit + 1)
        except zlib.error as error:
            self._decompressor = None
            raise ProtocolError("invalid compressed data: %s" % error) from None
        if limit is not None and len(output) > limit:
            self._decompressor = None
            raise FrameTooLargeException("message inflates past the size limit")
        # After a BFINAL block (eof) the next message starts a new DEFLATE
        # stream; without context takeover every message does.
        self._decompressor = None if self._receive_reset or decompressor.eof else decompressor
        return output

    def finish_message(self, limit: int | None) -> bytes:
        """Inflate the end of a message (RFC 7692 7.2.2's empty block)."""
        output = self.decompress(_SYNC_TAIL, limit)
        # After a BFINAL block the next message starts a new DEFLATE stream.
        if self._receive_reset or self._stream_ended:
            self._decompressor = None
            self._stream_ended = False
        return output
