# The optional C accelerator (_speedups.c), as type checkers see it.
# The functions take positional arguments only (METH_VARARGS).
import socket
from typing import Any, Callable, TypeVar, overload

from _typeshed import ReadableBuffer

_Event = TypeVar("_Event")

def apply_mask(data: ReadableBuffer, mask: ReadableBuffer, /) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated; ValueError for another mask length."""

def short_frame(first_byte: int, payload: bytes, /) -> bytes:
    """The unmasked frame of a payload under 126 bytes: ``first_byte``, the length, the payload.

    ValueError for a longer payload or a first byte outside 0..255.
    """

def split_request_head(
        head: ReadableBuffer, /) -> tuple[str, str, bool, list[tuple[str, str]]] | None:
    """``(method, target, http11, [(name, value), ...])`` of a usual HTTP/1.x request head.

    The head comes without its final CRLFCRLF; checked as ``protocol/http11.py``'s
    ``parse_head`` does. None for anything else (that parser then names the error).
    """

def request_environ(head: ReadableBuffer, environ: dict[str, Any], keys: dict[str, str], /
                    ) -> bool | None:
    """A usual HTTP/1.1 request head (without its CRLFCRLF) into ``environ``; keep-alive.

    Sets the request line's keys (REQUEST_METHOD, SCRIPT_NAME, PATH_INFO,
    QUERY_STRING, RAW_URI, REQUEST_URI, SERVER_PROTOCOL) and each header under
    ``keys[name]`` ("" drops it), as ``server.add_request`` and ``parse_head``
    would; returns whether the connection stays open. None for any other head
    (HTTP/1.0, a body, Expect, a "%" in the path, a name not in ``keys`` or
    twice, anything ``parse_head`` refuses); ``environ`` may then be half filled.
    """

@overload
def parse_messages(
    buffer: ReadableBuffer, position: int, masked: object, limit: int, message_class: None,
    inflate: Callable[[bytes, bool], Any] | None, /,
) -> tuple[list[Any], int, BaseException | None]: ...
@overload
def parse_messages(
    buffer: ReadableBuffer,
    position: int,
    masked: object,  # its truth value: whether this side expects masked frames
    limit: int,  # the size limit of a message, -1 for none
    message_class: Callable[[Any], _Event],
    inflate: Callable[[bytes, bool], Any] | None,
    /,
) -> tuple[list[_Event], int, BaseException | None]:
    """The run of small whole text/binary frames at ``position``.

    Each comes as ``message_class(data)`` (str for text, bytes for binary;
    for a type, without running its ``__init__``; for None, ``data`` itself); compressed ones go
    through ``inflate(payload, is_text)``, None when not negotiated.
    Returns the events, the position after them, and the exception that
    ``inflate`` raised, which ended the run (else None).
    """

def run_ready(reactor: Any, turn: Any, ready: Any, finished: list[tuple[Any, float]], /) -> None:
    """The reactor loop's run of the callbacks in ``ready`` (reactor.py's ``_run_ready_in_python``).

    While ``ready`` (a deque of watches) has one and ``reactor._turn`` is ``turn``: the
    first taken, counted and marked running in ``turn``, its callback called; a float it
    returns goes to ``finished`` as ``(watch, due)``. A callback's exception is raised.
    """

def take_armed(events: list[tuple[int, int]], watches: dict[int, Any], ready: Any, /) -> list[int]:
    """The armed watches of epoll's ``events`` (reactor.py's ``_take_armed_in_python``).

    Each one armed is disarmed and appended to ``ready``; the descriptors of
    the others are returned.
    """

def rearm_settled(finished: list[tuple[Any, float]], /) -> list[tuple[Any, float]]:
    """The usual finished watches armed again (reactor.py's ``_rearm_settled_in_python``).

    One not masked, not woken again, still watched and due no earlier than its
    timer is armed for ``due``; the other pairs are returned.
    """

def send_nowait(sock: socket.socket, data: ReadableBuffer, /) -> int:
    """One ``send()`` with MSG_DONTWAIT, the GIL kept: the bytes written, 0 when none now.

    OSError when the socket fails (EBADF once closed). Not on Windows.
    """

def recv_nowait(sock: socket.socket, size: int, /) -> bytes | None:
    """One ``recv()`` with MSG_DONTWAIT, the GIL kept: ``b""`` at the end, None when nothing came.

    OSError when the socket fails (EBADF once closed). Not on Windows.
    """

class Lock:
    """``threading.Lock``'s interface, which the C paths take without a Python call.

    A connection's send and read locks (``_sockets.new_lock``). ``acquire``
    lets the GIL go while it waits, and runs the signal handlers when a
    signal interrupts the wait, as ``threading.Lock``'s does.
    """

    def __init__(self, /) -> None: ...
    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
    def release(self, /) -> None: ...
    def locked(self, /) -> bool: ...
    def __enter__(self, /) -> bool: ...
    def __exit__(self, *args: object) -> None: ...

class DirectSend:
    """``WebSocket.send``'s usual case in one C call, for a server socket the loop writes to.

    ``direct(owner, message)`` sends a str or bytes message of at most 64 KiB
    as one unmasked frame when nothing stands in the way (``owner.closed``,
    the core's ``close_sent`` and ``failed``, frames in ``queue``, ``lock``
    taken), and returns True; else does nothing and returns False. While
    ``sender.holding`` (a batch's answers), the frame goes to
    ``sender.hold(owner, frame)`` instead, ``lock`` held, whatever waits in
    ``queue``. A partial write goes on in ``owner._finish_direct_send(frame,
    sent)``, called with ``lock`` held, which releases it. ``release_gil``:
    other threads run during the write (a thread per connection).
    """

    release_gil: int  # nonzero: other threads run during sendmsg(); 0 in the loop's thread

    def __init__(self, sock: socket.socket, connection: Any, sender: Any, queue: Any,
                 lock: Any, release_gil: bool, /) -> None: ...  # lock: a Lock (else TypeError)
    def __call__(self, owner: Any, message: object, /) -> bool: ...

class DirectReceive:
    """The event app's usual read in one C call: one ``recv()``, the whole messages at its start.

    ``direct(owner)`` reads once when the connection is at rest (open, no
    event waiting in ``events``, no frame half parsed, not corked, ``lock``
    free), tells ``keepalive.heard(now)``, and returns the str and bytes messages at
    the start of what came; the rest goes to ``connection.receive_data(rest)`` with
    ``lock`` held, and its events wait in ``events`` (next one last). None
    when it read nothing (not at rest, nothing there, the end, an error):
    the Python path reads.
    """

    def __init__(self, sock: socket.socket, connection: Any, events: list[Any],
                 transport: Any, keepalive: Any, lock: Any, masked: bool,
                 /) -> None: ...  # lock: a Lock (TypeError for another type)
    def __call__(self, owner: Any, /) -> list[str | bytes] | None: ...
    def receive(self, owner: Any, /) -> str | bytes | None:
        """``WebSocket.receive()``'s usual case in a connection's own thread.

        At rest, and with the transport's SO_RCVTIMEO what it would keep for
        the keepalive's next due time: one ``recv()`` without the GIL, the
        transport's read size kept up to date; one whole message alone is
        returned. Anything more that came goes to ``connection.receive_data``, its
        events to ``events``; then, as when nothing came, None.
        """

READ_SIZE: int  # must be _sockets.READ_SIZE
IDLE_READ_SIZE: int  # must be _transport.IDLE_READ_SIZE
HOLD_LIMIT: int  # must be _sending.HOLD_LIMIT

class EventTurn:
    """The reactor's callback for an event app's connection: its usual turn in one C call.

    ``turn()`` reads (``receive``); one message alone is handed to
    onmessage's one handler (``app_dict[onmessage_key].handlers``, looked up
    at each turn); returns ``keepalive.next_due`` (``math.inf`` for None).
    Everything else goes to ``session.resume()``, ``session.resume(taken)`` or
    ``session.resume([])``, the Python turn; the handler's exception to
    ``handler_failed(handler, error)``, the read's to ``session.ended_by_error(error)``.
    """

    def __init__(self, receive: DirectReceive, client: Any, keepalive: Any,
                 app_dict: dict[str, Any], onmessage_key: str, session: Any,
                 handler_failed: Callable[[Any, Exception], None], /) -> None: ...
    def __call__(self) -> float | None: ...
