"""``Hub``: broadcast and rooms, in one process or across many through Redis.

A hub knows the connections of its app (``WSocketApp`` adds every WebSocket
it serves, and drops it when the connection ends, whatever ended it) and
which rooms each one joined. ``broadcast(message, room=None, exclude=None,
binary=None)`` sends one message to every connection, or to a room's:

- The frame is built once and the same bytes go to every client (server
  frames are unmasked; broadcasts go uncompressed, which RFC 7692 allows
  even where permessage-deflate was negotiated), through
  ``WebSocket.deliver``: one non-blocking write per client, or a place in
  that client's bounded outgoing queue. A broadcast never waits for a slow
  client; one whose queue overflows is closed with 1013.
- Backends: ``memory://`` (the default) reaches the clients of this process;
  ``redis://host:port/db`` (``rediss://``, ``unix://`` too) also publishes
  each broadcast on a Redis channel, and every process sharing that Redis
  delivers it to its own clients. The URL comes from ``Hub(backend=...)``,
  ``WSocketApp(hub=...)``, ``wsocket --hub`` or the ``WSOCKET_HUB``
  environment variable.

Order: the messages one thread broadcasts reach each client in the order
they were broadcast (across processes too: one publisher connection and one
subscriber per process). Redis pub/sub keeps no history: broadcasts made
while a process cannot reach Redis are lost for the others; the hub logs
that and reconnects by itself.
"""

from __future__ import annotations

import collections
import itertools
import os
import re
import struct
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol, Union

from ._sockets import this_process
from .protocol.connection import SERVER, encode_message
from .protocol.frames import OP_BINARY, OP_TEXT, serialize_frame
from .websocket import WebSocket, logger

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Sequence

__all__ = ["Hub", "HubError", "HUB_ENVIRONMENT_VARIABLE"]

HUB_ENVIRONMENT_VARIABLE = "WSOCKET_HUB"
MAX_PENDING_PUBLISH = 10000  # broadcasts waiting for the Redis publisher; more are dropped
Room = Union[str, bytes]  # a room's name
_NO_ROOMS: frozenset[Room] = frozenset()  # the rooms of a client that joined none yet
RoomArg = Union[str, bytes, bytearray, memoryview]  # as given: bytes-likes become bytes
# exclude=: a client, a token, or a list of them
Exclude = Union["WebSocket", str, "Iterable[WebSocket | str]", None]


class Backend(Protocol):
    """Carries broadcasts to the hub's other processes (Redis, the workers' relay)."""

    def publish(self, envelope: bytes) -> None: ...
    def start(self) -> None: ...
    def close(self) -> None: ...


_RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)  # seconds between attempts, the last repeats


class HubError(Exception):
    """A hub backend cannot be used: unknown URL, missing package, Redis unreachable at start.

    Raised by ``Hub()`` (and so by ``WSocketApp(hub=...)``); the command
    line prints its message and exits with status 2. A Redis lost later is
    not an error: the hub logs it and reconnects.
    """


class Hub:
    """Broadcast and rooms: one message to every client, or to a room's, of every process.

    Every ``WSocketApp`` has one, ``app.hub``; make one yourself to share it
    between apps (``WSocketApp(hub=my_hub)``).

    Args:
        backend (str | None): None (the ``WSOCKET_HUB`` environment variable,
            else memory), ``"memory://"``, or a Redis URL
            (``redis://host:port/db``, ``rediss://``, ``unix://``).
        channel (str): Names the Redis channel (``wsocket:<channel>``): apps
            that share a Redis but not their clients use different channels.

    Attributes:
        url (str): The backend URL it was made with.
        node (str): This process's name among the hub's processes (in tokens).

    Raises:
        TypeError: ``backend`` is not a string.
        HubError: An unknown backend, the ``redis`` package missing, an
            invalid Redis URL, or a Redis that cannot be reached.
    """

    def __init__(self, backend: str | None = None, channel: str = "wsocket") -> None:
        if backend is None:
            backend = os.environ.get(HUB_ENVIRONMENT_VARIABLE) or "memory://"
        if not isinstance(backend, str):
            raise TypeError("a hub backend is a URL like 'memory://' or "
                            "'redis://127.0.0.1:6379/0', not %s" % type(backend).__name__)
        self.url = backend
        self.channel = channel
        self._lock = threading.Lock()
        # client -> set of its rooms, for every client the hub knows
        # Each client's rooms; _NO_ROOMS until it joins one (no set of its own).
        self._rooms: dict[WebSocket, set[Room] | frozenset[Room]] = {}
        # room -> {client: None}, in the order they joined
        self._members: dict[Room, dict[WebSocket, None]] = {}
        self._numbers: dict[WebSocket, int] = {}  # client -> its number in tokens
        self._counter = itertools.count(1)
        self._pid = this_process.pid
        self.node = uuid.uuid4().hex[:12]  # this process's hub, in tokens and on Redis
        scheme = backend.partition("://")[0].lower() if "://" in backend else backend.lower()
        self._backend: Backend | None
        if scheme == "memory":
            self._backend = None
        elif scheme in ("redis", "rediss", "unix"):
            self._backend = _RedisBackend(self, backend, channel)
        else:
            raise HubError("unknown hub backend %r: use memory:// or a Redis URL such as "
                           "redis://127.0.0.1:6379/0" % _redact(backend))

    def __repr__(self) -> str:
        return "<Hub %s, %d clients>" % (_redact(self.url), len(self._rooms))

    @property
    def backend(self) -> str:
        """The kind of backend: ``"memory"``, ``"redis"``, or ``"workers"`` (``--workers``)."""
        if self._backend is None:
            return "memory"
        return getattr(self._backend, "name", "redis")

    def span_workers(self, relay_address: str) -> bool:
        """In a worker of ``run(workers=N)``: reach the other workers' clients too.

        Only a memory hub changes (its broadcasts now go through the
        supervisor's relay); a Redis hub already reaches every process.
        Returns True when the hub now spans the workers.
        """
        from .workers import WorkersBackend
        self._check_fork()
        if self._backend is not None:
            return False
        self._backend = WorkersBackend(self, relay_address)
        return True

    # -- who is where -------------------------------------------------------------

    def add(self, client: WebSocket) -> bool:
        """Know ``client`` (in no room): broadcasts without a room reach it.

        ``WSocketApp`` adds each WebSocket it serves; a closed one is not added.
        One that has not had its 101 yet (see ``WebSocket.accept``) is added
        when it gets it: until then no broadcast reaches it.

        Args:
            client (WebSocket): The connection.

        Returns:
            bool: True when the hub knows the client now, False when it is closed.

        Raises:
            TypeError: ``client`` is not a ``WebSocket``.
        """
        _check_client(client)
        if not client.accepted:
            client.when_accepted(lambda: self.add(client))
            return True
        return self.admit(client)

    def admit(self, client: WebSocket) -> bool:
        """Add an accepted ``client`` now; the middleware calls it just before the 101 goes.

        (It runs with the client's send lock held: see ``WebSocket.send_opening``.)
        """
        self._check_fork()
        with self._lock:
            if client.closed:
                return False
            if client not in self._rooms:
                self._rooms[client] = _NO_ROOMS
                self._numbers[client] = next(self._counter)
            return True

    def discard(self, client: WebSocket) -> None:
        """Forget ``client``: it leaves every room (done when its connection ends).

        Args:
            client (WebSocket): The connection; one the hub does not know is ignored.
        """
        with self._lock:
            for room in self._rooms.pop(client, ()):
                self._leave_locked(client, room)
            self._numbers.pop(client, None)

    def join(self, client: WebSocket, room: RoomArg) -> bool:
        """Put ``client`` in ``room`` (a str or bytes name); joining twice is harmless.

        A client without its 101 yet joins when it gets it.

        Args:
            client (WebSocket): The connection.
            room (str | bytes): The room's name.

        Returns:
            bool: True once the client is in the room; False, having done
                nothing, when the connection is closed already.

        Raises:
            TypeError: ``client`` is not a ``WebSocket``, or ``room`` is neither
                ``str`` nor bytes.
        """
        room = _check_room(room)
        _check_client(client)
        if not client.accepted:
            client.when_accepted(lambda: self.join(client, room))
            return True  # it joins with its 101
        if not self.add(client):
            return False
        with self._lock:
            if client not in self._rooms:  # discarded meanwhile: it closed
                return False
            rooms = self._rooms[client]
            if not isinstance(rooms, set):
                rooms = self._rooms[client] = set()
            rooms.add(room)
            self._members.setdefault(room, {})[client] = None
        return True

    def leave(self, client: WebSocket, room: RoomArg | None = None) -> None:
        """Take ``client`` out of ``room``, or out of every room when None.

        Leaving a room one is not in does nothing.

        Args:
            client (WebSocket): The connection.
            room (str | bytes | None): The room, or None for every room.

        Raises:
            TypeError: ``room`` is neither ``str``, bytes nor None.
        """
        if room is not None:
            room = _check_room(room)
        with self._lock:
            rooms = self._rooms.get(client)
            if not isinstance(rooms, set) or not rooms:
                return
            for name in (list(rooms) if room is None else [room] if room in rooms else []):
                rooms.discard(name)
                self._leave_locked(client, name)

    def _leave_locked(self, client: WebSocket, room: Room) -> None:
        members = self._members.get(room)
        if members is not None:
            members.pop(client, None)
            if not members:
                del self._members[room]

    def rooms(self, client: WebSocket) -> set[Room]:
        """The rooms ``client`` is in.

        Args:
            client (WebSocket): The connection.

        Returns:
            set[str | bytes]: A new set of room names; empty once the client closed.
        """
        with self._lock:
            if client.closed:
                return set()
            return set(self._rooms.get(client, ()))

    def clients(self, room: RoomArg | None = None) -> list[WebSocket]:
        """This process's open clients in ``room``, or all of them when None.

        Args:
            room (str | bytes | None): The room, or None for every client.

        Returns:
            list[WebSocket]: The open connections, in the order they joined.

        Raises:
            TypeError: ``room`` is neither ``str``, bytes nor None.
        """
        with self._lock:
            if room is None:
                clients = list(self._rooms)
            else:
                clients = list(self._members.get(_check_room(room), ()))
        return [client for client in clients if not client.closed]

    def token(self, client: WebSocket) -> str:
        """``"node:number"``: names ``client`` in ``exclude`` on any process of the hub.

        Args:
            client (WebSocket): A client of this hub.

        Returns:
            str: The token.

        Raises:
            ValueError: ``client`` is not a client of this hub.
        """
        with self._lock:
            number = self._numbers.get(client)
        if number is None:
            raise ValueError("%r is not a client of this hub" % (client,))
        return "%s:%d" % (self.node, number)

    # -- broadcasting -----------------------------------------------------------------

    def broadcast(self, message: str | bytes | bytearray | memoryview,
                  room: RoomArg | None = None, exclude: Exclude = None,
                  binary: bool | None = None) -> int:
        """Send ``message`` to every client (of every process), or to those in ``room``.

        Returns at once: no client is waited for. A client that cannot take
        the message now gets it from its outgoing queue; one whose queue
        holds more than ``max_queue`` bytes is closed with 1013.

        Args:
            message (str | bytes | bytearray | memoryview): ``str`` goes as text
                and bytes-like as binary, unless ``binary`` says otherwise.
            room (str | bytes | None): Only the clients in this room; None: every client.
            exclude (WebSocket | str | list | None): A client, a token
                (``token()``), or a list of them, left out.
            binary (bool | None): True sends a binary frame, False a text frame,
                None chooses by the type of ``message``.

        Returns:
            int: The number of this process's clients the message was handed to.

        Raises:
            TypeError: ``message`` is neither ``str`` nor bytes-like, ``room``
                neither ``str`` nor bytes, or ``exclude`` holds something else
                than clients and tokens.
        """
        opcode, payload = _encode_message(message, binary)
        if room is not None:
            room = _check_room(room)
        excluded, tokens = self._exclusions(exclude)
        self._check_fork()
        count = self._deliver(opcode, payload, room, excluded,
                              _local_numbers(tokens, self.node))
        if self._backend is not None:
            self._backend.publish(_pack(self.node, opcode, payload, room, tokens))
        return count

    def _exclusions(self, exclude: Exclude) -> tuple[set[WebSocket], list[str]]:
        if exclude is None:
            return set(), []
        if isinstance(exclude, (WebSocket, str)):
            exclude = [exclude]
        clients, tokens = set(), []
        for item in exclude:
            if isinstance(item, str):
                tokens.append(item)
            else:
                _check_client(item)
                clients.add(item)
                with self._lock:
                    number = self._numbers.get(item)
                if number is not None:
                    tokens.append("%s:%d" % (self.node, number))
        return clients, tokens

    def _deliver(self, opcode: int, payload: bytes, room: Room | None,
                 excluded: Collection[WebSocket], excluded_numbers: set[int]) -> int:
        """Hand one frame to this process's clients; returns how many took it."""
        with self._lock:
            targets = list(self._rooms if room is None else self._members.get(room, ()))
            numbers = self._numbers if excluded_numbers else None
            if numbers is not None:
                targets = [client for client in targets
                           if numbers.get(client) not in excluded_numbers]
        frame = serialize_frame(opcode, payload)
        count = 0
        for client in targets:
            if client in excluded or client.closed:
                continue
            if client.side != SERVER:  # a client-side WebSocket masks each frame
                if client.deliver(serialize_frame(opcode, payload, masked=True)):
                    count += 1
            elif client.deliver(frame):
                count += 1
        return count

    def receive_envelope(self, envelope: bytes) -> None:
        """A broadcast from another process, as its backend (Redis, the workers' relay) gave it."""
        try:
            node, opcode, payload, room, tokens = _unpack(envelope)
        except ValueError as error:
            logger.warning("hub %s: dropped a malformed message from Redis: %s",
                           _redact(self.url), error)
            return
        if node == self.node:
            return  # ours: its clients here had it at once
        self._deliver(opcode, payload, room, (), _local_numbers(tokens, self.node))

    # -- processes ------------------------------------------------------------------

    def _check_fork(self) -> None:
        """In a forked child (gunicorn --preload) the hub gets a node and threads of its own."""
        if self._pid != this_process.pid:
            with self._lock:
                if self._pid != this_process.pid:
                    self._pid = this_process.pid
                    self.node = uuid.uuid4().hex[:12]
                    self._rooms.clear()
                    self._members.clear()
                    self._numbers.clear()
                    if self._backend is not None:
                        self._backend.start()

    def close(self) -> None:
        """Stop the backend's threads and connections (Redis); the hub is unusable afterwards.

        Does nothing for the memory backend.
        """
        if self._backend is not None:
            self._backend.close()


def _check_client(client: object) -> None:
    if not isinstance(client, WebSocket):
        raise TypeError("a hub client is a WebSocket, not %s" % type(client).__name__)


def _check_room(room: object) -> Room:
    if isinstance(room, str):
        return room
    if isinstance(room, (bytes, bytearray, memoryview)):
        return bytes(room)
    raise TypeError("a room name is a str or bytes, not %s" % type(room).__name__)


def _encode_message(message: object, binary: bool | None) -> tuple[int, bytes]:
    if isinstance(message, (str, bytes, bytearray, memoryview)):
        return encode_message(message, binary)
    raise TypeError("broadcast() takes str or a bytes-like object, not %s"
                    % type(message).__name__)


def _local_numbers(tokens: Iterable[str], node: str) -> set[int]:
    """The client numbers of this node among ``tokens``."""
    numbers: set[int] = set()
    for token in tokens:
        prefix, _, number = token.rpartition(":")
        if prefix == node and number.isdigit():
            numbers.add(int(number))
    return numbers


def _redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


# -- the message on Redis -------------------------------------------------------------
#
#   b"WSH1", flags (1 byte: 1 binary, 2 has a room, 4 the room is bytes),
#   node (12 ASCII bytes), [room length (4 bytes) and room], number of
#   exclude tokens (2 bytes), each as length (2 bytes) and ASCII bytes, then
#   the payload to the end. Every byte of rooms and payloads goes as it is.

_MAGIC = b"WSH1"
_BINARY, _HAS_ROOM, _ROOM_BYTES = 1, 2, 4
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def _pack(node: str, opcode: int, payload: bytes, room: Room | None,
          tokens: Sequence[str]) -> bytes:
    flags = _BINARY if opcode == OP_BINARY else 0
    parts = [_MAGIC, b"", node.encode("ascii")]
    if room is not None:
        flags |= _HAS_ROOM
        if isinstance(room, bytes):
            flags |= _ROOM_BYTES
            name = room
        else:
            name = room.encode("utf-8", "surrogatepass")
        parts += [_U32.pack(len(name)), name]
    parts.append(_U16.pack(len(tokens)))
    for token in tokens:
        data = token.encode("utf-8", "surrogatepass")
        parts += [_U16.pack(len(data)), data]
    parts[1] = bytes([flags])
    parts.append(payload)
    return b"".join(parts)


def _unpack(data: bytes) -> tuple[str, int, bytes, Room | None, list[str]]:
    try:
        if data[:4] != _MAGIC:
            raise ValueError("not a wsocket hub message")
        flags = data[4]
        node = data[5:17].decode("ascii")
        position = 17
        room: Room | None = None
        if flags & _HAS_ROOM:
            (length,) = _U32.unpack_from(data, position)
            position += 4
            name = data[position:position + length]
            if len(name) != length:
                raise ValueError("room name cut short")
            position += length
            room = name if flags & _ROOM_BYTES else name.decode("utf-8", "surrogatepass")
        (count,) = _U16.unpack_from(data, position)
        position += 2
        tokens: list[str] = []
        for _ in range(count):
            (length,) = _U16.unpack_from(data, position)
            position += 2
            tokens.append(data[position:position + length].decode("utf-8", "surrogatepass"))
            position += length
        if position > len(data):
            raise ValueError("message cut short")
    except (IndexError, struct.error, UnicodeDecodeError) as error:
        raise ValueError(str(error) or "message cut short") from None
    opcode = OP_BINARY if flags & _BINARY else OP_TEXT
    return node, opcode, data[position:], room, tokens


# -- Redis ------------------------------------------------------------------------------

class _RedisBackend:
    """One publisher thread and one subscriber thread per process, on one channel.

    The publisher sends broadcasts in order (pipelined when they pile up);
    the subscriber hands what other processes publish to the hub. Both
    notice a lost connection, log it, retry with growing delays, and log
    what was lost when Redis is back.
    """

    def __init__(self, hub: Hub, url: str, channel: str) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise HubError("the Redis hub (%s) needs the redis package: "
                           "pip install 'wsocket[redis]'" % _redact(url)) from None
        self._redis = redis
        self._hub = hub
        self.url = _redact(url)
        self._channel = ("wsocket:%s" % channel).encode("utf-8")
        try:
            # No retries inside redis-py: a lost connection must reach us,
            # to be logged, not be hidden by a silent reconnection.
            self._client: Any = redis.Redis.from_url(
                url, socket_connect_timeout=5, socket_timeout=10, socket_keepalive=True,
                health_check_interval=15, retry=Retry(NoBackoff(), 0))
        except ValueError as error:
            raise HubError("invalid Redis URL %s: %s" % (self.url, error)) from None
        try:
            self._client.ping()
        except (redis.RedisError, OSError) as error:
            raise HubError("cannot reach Redis at %s: %s" % (self.url, error)) from None
        self._condition = threading.Condition()
        self._pending: collections.deque[bytes] = collections.deque()
        self._closed = False
        self._generation = 0
        self._publisher_down = False
        self._lost_here = 0
        self.start()

    def start(self) -> None:
        """Start (or, in a forked child, start again) both threads; waits for the subscription."""
        # A new condition: after a fork, the old one still lists the parent's
        # waiting publisher, and a notify() would go to that ghost.
        self._condition = threading.Condition()
        with self._condition:
            self._generation += 1
            generation = self._generation
            self._pending.clear()
            self._publisher_down = False
            self._lost_here = 0
        subscribed = threading.Event()
        for target, args in ((self._subscribe_loop, (generation, subscribed)),
                             (self._publish_loop, (generation,))):
            threading.Thread(target=target, args=args, daemon=True,
                             name="wsocket-hub-redis").start()
        if not subscribed.wait(10):
            logger.warning("hub: not subscribed to Redis at %s after 10 s; going on",
                           self.url)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def _running(self, generation: int) -> bool:
        return not self._closed and generation == self._generation

    # -- publishing ---------------------------------------------------------------

    def publish(self, envelope: bytes) -> None:
        with self._condition:
            if self._publisher_down or len(self._pending) >= MAX_PENDING_PUBLISH:
                if not self._publisher_down and not self._lost_here:
                    logger.warning("hub: %d broadcasts wait for Redis at %s; dropping more "
                                   "until they are out", MAX_PENDING_PUBLISH, self.url)
                self._lost_here += 1
                return
            self._pending.append(envelope)
            self._condition.notify()

    def _publish_loop(self, generation: int) -> None:
        while True:
            with self._condition:
                while not self._pending and self._running(generation):
                    self._condition.wait()
                if not self._running(generation):
                    return
                batch = list(self._pending)
                self._pending.clear()
            try:
                if len(batch) == 1:
                    self._client.publish(self._channel, batch[0])
                else:
                    pipeline = self._client.pipeline(transaction=False)
                    for envelope in batch:
                        pipeline.publish(self._channel, envelope)
                    pipeline.execute()
            except (self._redis.RedisError, OSError) as error:
                self._publisher_outage(generation, error, len(batch))
            else:
                with self._condition:
                    if self._lost_here and not self._publisher_down:
                        logger.warning("hub: %d broadcasts were dropped while too many waited "
                                       "for Redis at %s", self._lost_here, self.url)
                        self._lost_here = 0

    def _publisher_outage(self, generation: int, error: Exception, unsent: int) -> None:
        started = time.monotonic()
        with self._condition:
            self._publisher_down = True
            self._lost_here += unsent + len(self._pending)
            self._pending.clear()
        logger.error("hub: lost the connection to Redis at %s (%s); reconnecting. Until it is "
                     "back, broadcasts made here reach this process's clients only",
                     self.url, error)
        for delay in itertools.chain(_RECONNECT_DELAYS, itertools.repeat(_RECONNECT_DELAYS[-1])):
            if not self._running(generation):
                return
            time.sleep(delay)
            try:
                self._client.ping()
                break
            except (self._redis.RedisError, OSError):
                continue
        with self._condition:
            lost, self._lost_here = self._lost_here, 0
            self._publisher_down = False
        logger.warning("hub: Redis at %s is back after %.1f s; %d broadcasts made here "
                       "meanwhile were lost for the other processes", self.url,
                       time.monotonic() - started, lost)

    # -- subscribing --------------------------------------------------------------

    def _subscribe_loop(self, generation: int, subscribed: threading.Event) -> None:
        delays = itertools.chain(_RECONNECT_DELAYS, itertools.repeat(_RECONNECT_DELAYS[-1]))
        down_since: float | None = None
        while self._running(generation):
            pubsub: Any = None
            try:
                pubsub = self._client.pubsub()
                pubsub.subscribe(self._channel)
                while True:  # the confirmation, before anything is delivered
                    message = pubsub.get_message(timeout=5)
                    if message is None:
                        raise self._redis.TimeoutError("no answer to SUBSCRIBE")
                    if message["type"] == "subscribe":
                        break
                if down_since is not None:
                    logger.warning("hub: subscribed again to Redis at %s after %.1f s; "
                                   "broadcasts other processes made meanwhile were lost here",
                                   self.url, time.monotonic() - down_since)
                    down_since = None
                delays = itertools.chain(_RECONNECT_DELAYS,
                                         itertools.repeat(_RECONNECT_DELAYS[-1]))
                subscribed.set()
                while self._running(generation):
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        try:
                            self._hub.receive_envelope(message["data"])
                        except Exception:
                            logger.exception("hub: error delivering a broadcast from Redis")
            except (self._redis.RedisError, OSError) as error:
                if down_since is None:
                    down_since = time.monotonic()
                    logger.error("hub: lost the subscription to Redis at %s (%s); "
                                 "reconnecting. Broadcasts other processes make until it is "
                                 "back are lost here", self.url, error)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
            if self._running(generation):
                time.sleep(next(delays))
