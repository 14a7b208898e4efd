"""TLS peers that do not race OpenSSL.

websockets' sync client reads a connection in a thread of its own while
the caller's thread writes it. OpenSSL allows one call at a time on a
connection, and with TLS 1.3 the collision is real: the server's session
tickets arrive just after the handshake, so the client's reader thread
handles them while the main thread writes the upgrade request, and the
request can vanish (CI saw handshakes never answered, the server still
waiting for the request, about once in 30 runs).

So a test that wants websockets as its wss client uses its asyncio client,
which reads and writes in one thread: ``talk_over_tls`` for a plain
exchange. Where a test needs many blocking clients at once (the hub's),
``taking_turns(context)`` makes the context's sockets take turns: each read
and write runs alone and never blocks inside OpenSSL; the waiting is done
outside the turn.

wsocket's own client and server need none of this: they hold a lock of
their own around every TLS call (``wsocket._transport``).
"""

import asyncio
import select
import socket
import ssl
import threading

from websockets.asyncio.client import connect

from tests.netutil import TIMEOUT


def talk_over_tls(url, context, messages, before_each=None, **options):
    """Send each of ``messages`` and read one reply, with websockets' asyncio client.

    Returns the replies. ``before_each()``, when given, runs (in a thread, so
    it may block) before each message is sent; ``options`` go to ``connect``.
    """
    async def talk():
        async with connect(url, ssl=context, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                           **options) as websocket:
            replies = []
            for message in messages:
                if before_each is not None:
                    await asyncio.to_thread(before_each)
                await websocket.send(message)
                replies.append(await asyncio.wait_for(websocket.recv(), TIMEOUT))
            return replies

    return asyncio.run(talk())


def taking_turns(context):
    """``context``, its sockets made ``TurnTakingSSLSocket``s; returns it."""
    context.sslsocket_class = TurnTakingSSLSocket
    return context


class TurnTakingSSLSocket(ssl.SSLSocket):
    """An ``SSLSocket`` whose ``recv`` and ``sendall`` (what websockets uses) take turns."""

    @property
    def _turn(self):
        # Made on first use (the handshake, in one thread, needs none); setdefault
        # keeps the first lock if two threads get here at once.
        return self.__dict__.setdefault("_turn_lock", threading.Lock())

    def _try(self, call, *args):
        """``call(*args)`` without blocking, in its turn; None when it would block."""
        with self._turn:
            timeout = self.gettimeout()
            socket.socket.settimeout(self, 0.0)
            try:
                return call(*args)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return None
            finally:
                socket.socket.settimeout(self, timeout)

    def settimeout(self, value):
        with self._turn:  # not while a turn has the socket non-blocking for a moment
            super().settimeout(value)

    def _wait(self, readable):
        """Wait, outside the turn, for the socket as its timeout allows."""
        if readable and self.pending():
            return
        timeout = self.gettimeout()
        ready = select.select([self] if readable else [], [] if readable else [self], [],
                              timeout)
        if not any(ready):
            raise socket.timeout("timed out")

    def recv(self, buflen=1024, flags=0):
        while True:
            data = self._try(super().recv, buflen, flags)
            if data is not None:
                return data
            self._wait(readable=True)  # not a whole record yet (or only session tickets)

    def sendall(self, data, flags=0):
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            # OpenSSL wants a write it could not finish repeated with the same
            # bytes: the rest from ``sent`` on is that.
            count = self._try(super().send, view[sent:], flags)
            if count is None:
                self._wait(readable=False)
            else:
                sent += count
