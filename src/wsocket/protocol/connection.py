"""The WebSocket state machine (RFC 6455 sections 5 to 7), free of I/O.

Feed it the bytes that came off the socket with ``receive_data()`` and it
returns events; ask it for a frame with ``send_message()``, ``send_ping()``
and friends and it returns the bytes to write. It never touches a socket, a
thread or a clock, so every rule can be tested byte for byte.

Payloads are processed as they arrive, even the first half of a frame, so
invalid UTF-8 fails the connection at the byte that makes it invalid and an
oversized message fails at its header, before its payload is buffered.
"""

from __future__ import annotations

import codecs
import enum
import struct
from typing import Any

from ..errors import FrameTooLargeException, InvalidUTF8, ProtocolError
from .codes import CloseCode, close_code, is_valid_close_code
from .deflate import DEFAULT_COMPRESSION_LEVEL, DeflateCodec, DeflateParams, check_compression_level
from .frames import (
    CONTROL_OPCODES,
    MAX_CONTROL_PAYLOAD,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Buffer,
    FrameHeader,
    apply_mask,
    parse_header,
    parse_messages,
    serialize_frame,
    short_frame,
)

__all__ = [
    "Side", "State", "SERVER", "CLIENT", "OPEN", "CLOSING", "CLOSED", "DEFAULT_MAX_MESSAGE_SIZE",
    "Connection", "Event", "Message", "Ping", "Pong", "CloseReceived", "Failure",
    "CloseCode", "check_close_code", "is_valid_close_code", "encode_message",
]


class _StrEnum(str, enum.Enum):
    """Members are the strings they stand for: equal to them, hashed like them,
    and printed as them (``"%s"``, ``format()`` and f-strings, on every Python)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Side(_StrEnum):
    """Which end of the connection this is: it decides which frames are masked."""

    SERVER = "server"
    CLIENT = "client"


class State(_StrEnum):
    """Where a connection is in its life (RFC 6455 section 7)."""

    OPEN = "OPEN"  # messages flow both ways
    CLOSING = "CLOSING"  # one side sent a close frame, the other has not answered yet
    CLOSED = "CLOSED"  # both close frames exchanged, or the connection failed


# The names other modules have always used, now the enum members.
SERVER = Side.SERVER
CLIENT = Side.CLIENT
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
# With no size limit, fragments are still bounded as for messages of 64 MiB.
_UNLIMITED_SIZE_BASIS = 64 * 1024 * 1024

_unpack_code = struct.Struct("!H").unpack
_pack_code = struct.Struct("!H").pack
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


# -- events -----------------------------------------------------------------

class Event:
    """What ``Connection.receive_data()`` returns, one per thing the peer said."""

    __slots__: tuple[str, ...] = ()

    def __repr__(self) -> str:
        fields = ", ".join("%s=%r" % (name, getattr(self, name)) for name in self.__slots__)
        return "%s(%s)" % (type(self).__name__, fields)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)


class Message(Event):
    """A whole data message: ``data`` is ``str`` for text, ``bytes`` for binary."""

    __slots__ = ("data",)

    def __init__(self, data: str | bytes) -> None:
        self.data = data


class Ping(Event):
    """A ping; answer it with ``send_pong(payload)``."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class Pong(Event):
    """A pong, the answer to a ping (or unsolicited, a heartbeat)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class CloseReceived(Event):
    """The peer's close frame: ``code`` is 1005 when it carried no status.

    ``code`` is a ``CloseCode`` member when the code has a name.
    """

    __slots__ = ("code", "reason", "payload")

    def __init__(self, code: int, reason: str, payload: bytes) -> None:
        self.code = code
        self.reason = reason
        self.payload = payload


class Failure(Event):
    """The peer broke the protocol: fail the connection with ``code``.

    Nothing more is parsed after it; the caller sends ``fail()``'s frame and
    drops the TCP connection.
    """

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


# -- close codes --------------------------------------------------------------

def encode_message(data: str | bytes | bytearray | memoryview,
                   binary: bool | None = None) -> tuple[int, bytes]:
    """The opcode and payload of one message: ``str`` as text unless ``binary``,
    bytes-like as binary unless ``binary is False`` (then sent as they are)."""
    if isinstance(data, str):
        return (OP_BINARY if binary else OP_TEXT), data.encode("utf-8")
    return (OP_TEXT if binary is False else OP_BINARY), \
        data if isinstance(data, bytes) else bytes(data)


def check_close_code(code: int, reason: str | bytes = "") -> bytes:
    """Validate a close frame we are about to send; returns the reason as bytes."""
    if not isinstance(code, int) or not is_valid_close_code(code):
        raise ValueError("invalid close code %r: use 1000-1003, 1007-1014 or 3000-4999" % (code,))
    encoded = reason.encode("utf-8") if isinstance(reason, str) else bytes(reason)
    if len(encoded) > MAX_CONTROL_PAYLOAD - 2:
        raise ValueError("close reason is %d bytes long; at most 123 fit in a close frame"
                         % len(encoded))
    return encoded


def _decode_text(payload: bytes) -> str:
    """A whole text message's bytes as ``str``; InvalidUTF8 names what is wrong."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.reason == "unexpected end of data":
            raise InvalidUTF8("text message ends inside a UTF-8 sequence") from None
        raise InvalidUTF8("invalid UTF-8 in text message: %s" % error.reason) from None


def _utf8_prefix_is_dead(decoder: codecs.IncrementalDecoder) -> bool:
    """Whether the bytes the decoder holds back can never become valid.

    CPython's decoder already rejects most impossible prefixes at once, but
    keeps ED A0-BF (the start of a UTF-16 surrogate) until the next byte.
    """
    pending = decoder.getstate()[0]
    return len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0


# -- the state machine ----------------------------------------------------------

class Connection:
    """One side of a WebSocket connection, after the opening handshake.

    ``side`` is ``SERVER`` or ``CLIENT``: it decides which frames must be
    masked. ``deflate`` holds the negotiated ``DeflateParams`` or None.
    ``max_message_size`` (bytes, None for no limit) applies to each message
    after decompression. ``max_fragments`` bounds the frames of one message
    (default: one per 64 bytes of ``max_message_size``, at least 1,024), so
    a flood of tiny or empty fragments cannot cost more work than the bytes
    a legitimate message of the allowed size would.
    """

    # Slots: the C paths (_speedups.c's SlotField) read the receiving and
    # closing state at every message, where a slot lies, faster than a
    # dictionary lookup; Python reads them faster too.
    __slots__ = ("side", "state", "_size_limit", "max_fragments", "_message_fragments",
                 "deflate", "_codec", "_inflate", "_mask_outgoing", "_expect_masked",
                 "close_sent", "close_received", "failed", "receive_failed", "_buffer",
                 "_frame", "_frame_remaining", "_frame_mask_offset", "_message_opcode",
                 "_message_compressed", "_message_size", "_parts", "_utf8", "__weakref__")

    def __init__(self, side: Side | str = SERVER, deflate: DeflateParams | None = None,
                 max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
                 max_fragments: int | None = None,
                 compression_level: int = DEFAULT_COMPRESSION_LEVEL) -> None:
        if side not in (SERVER, CLIENT):
            raise ValueError("side must be %r or %r, not %r" % (SERVER.value, CLIENT.value, side))
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be None or a size in bytes")
        # The plain strings "server" and "client" are accepted too, as always
        # (converted only then: an Enum call is a Python call, once a connection).
        self.side = side if side.__class__ is Side else Side(side)
        self.state: State = OPEN
        self._size_limit = -1  # max_message_size for the C fast path: -1 for none
        self.max_message_size = max_message_size
        if max_fragments is None:
            max_fragments = max(1024, (max_message_size or _UNLIMITED_SIZE_BASIS) // 64)
        elif max_fragments < 1:
            raise ValueError("max_fragments must be None or at least 1")
        self.max_fragments = max_fragments
        self._message_fragments = 0
        self.deflate = deflate
        if compression_level is not DEFAULT_COMPRESSION_LEVEL:  # (the default needs no check)
            check_compression_level(compression_level)
        self._codec = (DeflateCodec(deflate, side, compression_level)
                       if deflate is not None else None)
        # What the C fast path is given on every read, worked out once.
        self._inflate = None if self._codec is None else self._inflate_whole
        self._mask_outgoing = side == CLIENT
        self._expect_masked = side == SERVER
        # (code, reason) once we sent a close frame
        self.close_sent: tuple[int, str] | None = None
        # (code, reason) once the peer's close arrived
        self.close_received: tuple[int, str] | None = None
        self.failed = False  # set by fail(): nothing more is sent or parsed
        # Set when the peer broke the protocol. Messages parsed before the
        # violation are still delivered and may be answered (RFC 6455 has
        # them echoed before the failure), so sending stays possible until
        # the caller acts on the Failure event with fail().
        self.receive_failed = False

        self._buffer = bytearray()
        # The frame whose payload is arriving (data frames only).
        self._frame: FrameHeader | None = None
        self._frame_remaining = 0
        self._frame_mask_offset = 0
        # The message being assembled.
        self._message_opcode: int | None = None  # OP_TEXT or OP_BINARY inside a message
        self._message_compressed = False
        self._message_size = 0
        # str pieces of a text message, bytes of a binary one
        self._parts: list[Any] = []
        self._utf8: codecs.IncrementalDecoder | None = None

    @property
    def max_message_size(self) -> int | None:
        """Bytes per message received (after decompression); None: no limit."""
        return None if self._size_limit < 0 else self._size_limit

    @max_message_size.setter
    def max_message_size(self, size: int | None) -> None:
        self._size_limit = -1 if size is None else size

    # -- receiving ----------------------------------------------------------

    def receive_data(self, data: Buffer) -> list[Event]:
        """Parse bytes from the peer; returns the list of events they complete.

        After a ``Failure`` or a ``CloseReceived`` no more data is parsed:
        RFC 6455 allows nothing after a close frame.
        """
        if self.failed or self.receive_failed or self.close_received is not None:
            return []
        if parse_messages is not None and not self._buffer and self._frame is None \
                and self._message_opcode is None and type(data) is bytes:
            # The usual read, nothing pending from before: straight to the C
            # fast path; if it takes all of ``data``, that is all.
            # (parse_messages directly, not _parse_run: one call less per read)
            run: tuple[list[Event], int, BaseException | None] = parse_messages(
                data, 0, self._expect_masked, self._size_limit, Message, self._inflate)
            messages, position, error = run
            if error is None and position == len(data):
                return messages
            # Something else is in there too: the whole way, from where it stopped.
            # (An error is raised again below: the C run had already consumed it.)
            return self._receive_rest(data, position, messages, error)
        return self._receive_rest(data, 0, [], None)

    def receive_messages(self, data: Buffer, rest: list[Event]) -> list[str | bytes]:
        """``receive_data`` for a reader that wants the messages themselves.

        Returns the data of the whole messages at the start of what ``data``
        completes (no ``Message`` made for each: the event app's usual read,
        one message or a few, costs a list and nothing more); the events of
        whatever follows them (a control frame, a failure, the next
        message's frames) are appended to ``rest``, in order, after them.
        """
        if parse_messages is not None and not self._buffer and self._frame is None \
                and self._message_opcode is None and type(data) is bytes \
                and not (self.failed or self.receive_failed or self.close_received is not None):
            values, position, error = parse_messages(
                data, 0, self._expect_masked, self._size_limit, None, self._inflate)
            if error is not None or position < len(data):
                rest.extend(self._receive_rest(data, position, [], error))
            return values
        events = self.receive_data(data)  # (without the C fast path, or mid-message)
        messages: list[str | bytes] = []
        for index, event in enumerate(events):
            if not isinstance(event, Message):
                rest.extend(events[index:])
                break
            messages.append(event.data)
        return messages

    def _receive_rest(self, data: Buffer, position: int, events: list[Event],
                      error: BaseException | None) -> list[Event]:
        """receive_data() for ``data[position:]``, after ``events`` (and maybe ``error``)."""
        if position:
            data = data[position:]
        buffer: Buffer
        if self._buffer or type(data) is not bytes:
            self._buffer += data
            buffer = self._buffer
        else:
            buffer = data  # nothing left over from before: parsed where it is, no copy
        try:
            if error is not None:
                raise error
            position = self._parse(buffer, events)
        except ProtocolError as error:
            self.receive_failed = True
            self._buffer = bytearray()
            self._parts = []
            events.append(Failure(error.code, str(error)))
            return events
        if buffer is self._buffer:
            del self._buffer[:position]
        elif position < len(buffer):
            self._buffer = bytearray(memoryview(buffer)[position:])
        return events

    def _parse(self, buffer: Buffer, events: list[Event]) -> int:
        """Parse what ``buffer`` holds into ``events``; returns how many bytes were used."""
        position = 0
        end = len(buffer)
        while position < end:
            if parse_messages is not None and self._frame is None \
                    and self._message_opcode is None:
                # The C fast path takes the run of small whole messages here
                # and stops before anything else, which the code below judges.
                messages, position, error = self._parse_run(buffer, position)
                if messages:
                    events.extend(messages)
                if error is not None:
                    raise error
                if position >= end:
                    break
            frame = self._frame
            if frame is not None:
                take = min(self._frame_remaining, end - position)
                self._payload_chunk(frame, buffer[position:position + take], events)
                position += take
                continue
            header = parse_header(buffer, position)
            if header is None:
                break
            self._check_header(header)
            if header.opcode in CONTROL_OPCODES:
                # Control frames are short: wait until the whole one is here.
                if end - position < header.size + header.length:
                    break
                start = position + header.size
                payload = bytes(buffer[start:start + header.length])
                if header.mask is not None:
                    payload = apply_mask(payload, header.mask)
                position = start + header.length
                self._control_frame(header.opcode, payload, events)
                if self.close_received is not None:
                    position = end  # RFC 6455 5.5.1: nothing is read after a close
                continue
            start = position + header.size
            stop = start + header.length
            if header.fin and stop <= end and header.opcode != OP_CONTINUATION:
                # The common case, a whole unfragmented message already here:
                # inflate and decode it in one go.
                body = buffer[start:stop]
                plain = apply_mask(body, header.mask) if header.mask else bytes(body)
                data: str | bytes
                if header.rsv1:
                    data = self._inflate_whole(plain, header.opcode == OP_TEXT)
                elif header.opcode == OP_TEXT:
                    data = _decode_text(plain)
                else:
                    data = plain
                events.append(Message(data))
                position = stop
                continue
            position = start
            self._start_data_frame(header)
            if header.length == 0:
                self._end_data_frame(header.fin, events)
        return position

    def _parse_run(self, buffer: Buffer, position: int
                   ) -> tuple[list[Event], int, BaseException | None]:
        """The C fast path (``frames.parse_messages``) from ``position``: (events, position, error).

        Only called where ``parse_messages`` is not None: the type checker
        cannot see that, and a check here would cost time on every read.
        """
        return parse_messages(  # type: ignore[misc]
            buffer, position, self._expect_masked, self._size_limit, Message, self._inflate)

    def _inflate_whole(self, payload: bytes, text: bool) -> str | bytes:
        """The data of a compressed message that came whole, in one frame."""
        # Only called on a compressed frame, which _check_header allows
        # only with a codec (an assertion for the type checker).
        assert self._codec is not None
        limit = self._size_limit
        data = self._codec.inflate_message(payload, None if limit < 0 else limit)
        if not text:
            return data
        try:
            return data.decode("utf-8")  # (inline: the valid case costs no call)
        except UnicodeDecodeError:
            return _decode_text(data)  # raises InvalidUTF8, naming what is wrong

    def _check_header(self, header: FrameHeader) -> None:
        if header.rsv2 or header.rsv3:
            raise ProtocolError("reserved bits RSV2/RSV3 set without an extension")
        opcode = header.opcode
        if header.rsv1 and (self._codec is None or opcode not in (OP_TEXT, OP_BINARY)):
            if self._codec is None:
                raise ProtocolError("reserved bit RSV1 set without an extension")
            raise ProtocolError("RSV1 is only allowed on the first frame of a message")
        if (header.mask is not None) != self._expect_masked:
            raise ProtocolError("client frames must be masked" if self._expect_masked
                                else "server frames must not be masked")
        if opcode in CONTROL_OPCODES:
            if not header.fin:
                raise ProtocolError("fragmented control frame")
            if header.length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError("control frame payload of %d bytes (at most 125)"
                                    % header.length)
            return
        if opcode == OP_CONTINUATION:
            if self._message_opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._message_opcode is not None:
                raise ProtocolError("new data frame inside a fragmented message")
        else:
            raise ProtocolError("reserved opcode %#x" % opcode)
        if header.length >> 63:
            raise ProtocolError("payload length with the most significant bit set")
        limit = self.max_message_size
        compressed = header.rsv1 or (opcode == OP_CONTINUATION and self._message_compressed)
        # Only a continuation adds to the message so far; a first frame starts
        # a new message (_message_size still holds the previous one's size).
        so_far = self._message_size if opcode == OP_CONTINUATION else 0
        if limit is not None and not compressed and so_far + header.length > limit:
            raise FrameTooLargeException("message of more than %d bytes (the limit)" % limit)

    def _start_data_frame(self, header: FrameHeader) -> None:
        if header.opcode != OP_CONTINUATION:
            self._message_opcode = header.opcode
            self._message_compressed = header.rsv1
            self._message_fragments = 1
            self._message_size = 0
            self._parts = []
            self._utf8 = _Utf8Decoder() if header.opcode == OP_TEXT else None
        else:
            self._message_fragments += 1
            if self._message_fragments > self.max_fragments:
                raise FrameTooLargeException("message in more than %d fragments (the limit)"
                                             % self.max_fragments)
        self._frame = header
        self._frame_remaining = header.length
        self._frame_mask_offset = 0

    def _payload_chunk(self, frame: FrameHeader, raw: Buffer, events: list[Event]) -> None:
        """The next piece ``raw`` of the payload of ``frame`` (the data frame arriving)."""
        mask = frame.mask
        if mask is not None:
            offset = self._frame_mask_offset
            if offset:
                mask = mask[offset:] + mask[:offset]
            chunk = apply_mask(raw, mask)
            self._frame_mask_offset = (offset + len(chunk)) & 3
        else:
            chunk = bytes(raw)
        self._frame_remaining -= len(chunk)
        if self._message_compressed:
            assert self._codec is not None  # a compressed message needs one (_check_header)
            chunk = self._codec.decompress(chunk, self._room_left())
        self._add_to_message(chunk)
        if self._frame_remaining == 0:
            self._end_data_frame(frame.fin, events)

    def _room_left(self) -> int | None:
        if self.max_message_size is None:
            return None
        return self.max_message_size - self._message_size

    def _add_to_message(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._message_size += len(chunk)
        if self._utf8 is not None:
            try:
                text = self._utf8.decode(chunk, False)
            except UnicodeDecodeError as error:
                raise InvalidUTF8("invalid UTF-8 in text message: %s" % error.reason) from None
            if _utf8_prefix_is_dead(self._utf8):
                raise InvalidUTF8("invalid UTF-8 in text message: surrogate code point")
            if text:
                self._parts.append(text)
        else:
            self._parts.append(chunk)

    def _end_data_frame(self, fin: bool, events: list[Event]) -> None:
        """The data frame that was arriving is complete; ``fin`` when it ends the message."""
        self._frame = None
        if not fin:
            return
        if self._message_compressed:
            assert self._codec is not None  # a compressed message needs one (_check_header)
            self._add_to_message(self._codec.finish_message(self._room_left()))
        data: str | bytes
        if self._utf8 is not None:
            try:
                self._utf8.decode(b"", True)
            except UnicodeDecodeError:
                raise InvalidUTF8("text message ends inside a UTF-8 sequence") from None
            data = "".join(self._parts)
        else:
            data = b"".join(self._parts)
        self._message_opcode = None
        self._message_compressed = False
        self._parts = []
        self._utf8 = None
        events.append(Message(data))

    def _control_frame(self, opcode: int, payload: bytes, events: list[Event]) -> None:
        if opcode == OP_PING:
            events.append(Ping(payload))
        elif opcode == OP_PONG:
            events.append(Pong(payload))
        else:
            code, reason = self._parse_close(payload)
            self.close_received = (code, reason)
            # A close inside a fragmented message ends the connection
            # cleanly; the unfinished message is dropped.
            self._parts = []
            self._message_opcode = None
            if self.close_sent is not None:
                self.state = CLOSED
            else:
                self.state = CLOSING
            events.append(CloseReceived(code, reason, payload))

    @staticmethod
    def _parse_close(payload: bytes) -> tuple[int, str]:
        if not payload:
            return CloseCode.NO_STATUS_RCVD, ""
        if len(payload) == 1:
            raise ProtocolError("close frame with a 1-byte payload")
        code: int = _unpack_code(payload[:2])[0]
        if not is_valid_close_code(code):
            raise ProtocolError("invalid close code %d" % code)
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            # SPEC.md: invalid close frames, reasons included, are answered with 1002.
            raise ProtocolError("close reason is not valid UTF-8") from None
        return close_code(code), reason

    # -- sending ------------------------------------------------------------

    @property
    def sends_plain_frames(self) -> bool:
        """Whether a message goes out as its payload under a bare header (not compressed, not
        masked): the frames the C ``DirectSend`` builds."""
        return self._codec is None and not self._mask_outgoing

    @property
    def receives_plain_frames(self) -> bool:
        """Whether messages come uncompressed: the frames the C ``DirectReceive`` parses."""
        return self._inflate is None

    @property
    def expects_masked(self) -> bool:
        """Whether the peer's frames come masked (a server's)."""
        return self._expect_masked

    @property
    def can_send(self) -> bool:
        """Whether data frames may still be sent (no close frame sent yet)."""
        return self.close_sent is None and not self.failed

    def send_message(self, data: str | bytes | bytearray | memoryview,
                     binary: bool | None = None, compress: bool = True) -> bytes:
        """The frame of one whole message. ``str`` goes as text unless ``binary``."""
        if self.close_sent is not None or self.failed:  # (can_send, inline: once a message)
            raise ProtocolError("cannot send a message after the close frame")
        if type(data) is str and not binary:
            opcode, payload = OP_TEXT, data.encode("utf-8")  # the usual message, no call
        else:
            opcode, payload = encode_message(data, binary)
        rsv1 = False
        if compress and self._codec is not None:
            compressed = self._codec.compress(payload)
            if compressed is not None:
                payload, rsv1 = compressed, True
        if len(payload) < 126 and not self._mask_outgoing:
            # serialize_frame()'s result for the most common frame (short, unmasked),
            # made as one object rather than a header and then header + payload.
            return short_frame((0xC0 if rsv1 else 0x80) | opcode, payload)
        return serialize_frame(opcode, payload, True, rsv1, self._mask_outgoing)

    def send_ping(self, payload: str | bytes = b"") -> bytes:
        return self._control(OP_PING, payload)

    def send_pong(self, payload: str | bytes = b"") -> bytes:
        return self._control(OP_PONG, payload)

    def _control(self, opcode: int, payload: str | bytes) -> bytes:
        if not self.can_send:
            raise ProtocolError("cannot send a control frame after the close frame")
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        payload = bytes(payload)
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError("control frame payload of %d bytes (at most 125)" % len(payload))
        return serialize_frame(opcode, payload, True, False, self._mask_outgoing)

    def send_close(self, code: int | None = CloseCode.NORMAL_CLOSURE,
                   reason: str = "") -> bytes:
        """The close frame that starts or answers the closing handshake.

        ``code`` None sends a close frame without a status (the answer to a
        close that had none).
        """
        if self.close_sent is not None:
            raise ProtocolError("close frame already sent")
        if code is None:
            payload = b""
            self.close_sent = (CloseCode.NO_STATUS_RCVD, "")
        else:
            # Validate before packing: struct would raise its own error first
            # for codes outside 0-65535 or that are not integers.
            encoded = check_close_code(code, reason)
            payload = _pack_code(code) + encoded
            self.close_sent = (code, reason)
        self.state = CLOSED if self.close_received is not None else CLOSING
        return serialize_frame(OP_CLOSE, payload, True, False, self._mask_outgoing)

    def fail(self, code: int, reason: str = "") -> bytes:
        """The close frame for a failed connection (RFC 6455 7.1.7), or b"".

        Afterwards the connection is CLOSED: nothing more is sent or parsed.
        """
        self.failed = True
        already_sent = self.close_sent is not None
        self.state = CLOSED
        if already_sent or not is_valid_close_code(code):
            return b""
        # Cut the reason to fit, without splitting a UTF-8 sequence.
        encoded = reason.encode("utf-8")[:MAX_CONTROL_PAYLOAD - 2]
        encoded = encoded.decode("utf-8", "ignore").encode("utf-8")
        self.close_sent = (code, reason)
        return serialize_frame(OP_CLOSE, _pack_code(code) + encoded, True, False,
                               self._mask_outgoing)
