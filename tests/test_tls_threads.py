"""One TLS connection, several threads: reading and writing at once over wss://.

OpenSSL does not allow two threads in one SSL object at once, and CPython's
ssl module takes no lock of its own: a thread writing while another reads
the same TLS socket ends, under load, in ``ssl.SSLError: [SSL] internal
error`` (or in corrupted records). wsocket's ``SocketTransport`` keeps every
TLS call of a connection under one lock and never blocks inside one; these
tests drive exactly the mix that used to break it: the connection's thread
(or the reactor's) reading while other threads send, thousands of frames
each way, every one checked.

The peers are websockets' asyncio implementation: one thread per event loop,
so its own TLS objects are never shared between threads and any failure
here is ours.
"""

import asyncio
import contextlib
import logging
import ssl
import threading

import pytest
from websockets.asyncio.client import connect as asyncio_connect
from websockets.asyncio.server import serve as asyncio_serve

from tests.netutil import TIMEOUT, ws_url, wsocket_records
from wsocket import WSocketApp, connect

SENDERS = 3  # threads writing to one connection at once
PER_SENDER = 1500  # messages each of them sends
FROM_CLIENT = 3000  # messages the other side sends meanwhile
LONG = TIMEOUT * 12  # for a whole exchange of thousands of frames on a loaded machine


def message(tag, index):
    """Message ``index`` from ``tag``: sizes from 1 byte to about 20 KB (many TLS records)."""
    size = (index * 7919) % 20000 if index % 5 == 0 else (index * 37) % 300
    return "%s:%d:%s" % (tag, index, "x" * size)


def check_streams(received, tags, count):
    """Every message of every tag arrived, exactly, in the order it was sent."""
    positions = dict.fromkeys(tags, 0)
    for number, text in enumerate(received):
        tag = text.split(":", 1)[0]
        assert tag in positions, "message %d is not one we sent: %r" % (number, text[:80])
        expected = message(tag, positions[tag])
        assert text == expected, "message %d of %s differs: %r, expected %r" % (
            positions[tag], tag, text[:80], expected[:80])
        positions[tag] += 1
    assert positions == dict.fromkeys(tags, count)


@pytest.fixture
def wsocket_problems():
    """WARNING records (and above) of the ``wsocket`` logger: there must be none."""
    with wsocket_records(logging.WARNING) as records:
        yield records


def server_options(certificate):
    return {"certfile": certificate["certfile"], "keyfile": certificate["keyfile"]}


async def exchange(url, context, senders, per_sender):
    """A websockets asyncio client: sends FROM_CLIENT messages while receiving the others.

    Returns what it received, in order, once it has every message of
    ``senders`` (``per_sender`` each) and the server's final "done".
    """
    received = []
    async with asyncio_connect(url, ssl=context, max_size=None, compression=None,
                               open_timeout=TIMEOUT,
                               close_timeout=TIMEOUT) as websocket:
        await websocket.send("start")

        async def send_all():
            for index in range(FROM_CLIENT):
                await websocket.send(message("client", index))

        async def receive_all():
            while len(received) < senders * per_sender:
                received.append(await websocket.recv())

        await asyncio.wait_for(asyncio.gather(send_all(), receive_all()), LONG)
        assert await asyncio.wait_for(websocket.recv(), LONG) == "done"
    return received


def test_threads_send_while_the_connection_thread_reads(serve, certificate, wsocket_problems):
    """wsocket's server, a WSGI app: its thread receives, three more send, over wss://."""
    outcome = {}

    def app(environ, start_response):
        websocket = environ["wsgi.websocket"]
        assert websocket.receive(timeout=TIMEOUT) == "start"
        failures = []

        def send_all(tag):
            try:
                for index in range(PER_SENDER):
                    websocket.send(message(tag, index))
            except BaseException as error:  # reported by the test, not lost in a thread
                failures.append(error)

        threads = [threading.Thread(target=send_all, args=("sender%d" % number,))
                   for number in range(SENDERS)]
        for thread in threads:
            thread.start()
        received = []
        try:
            while len(received) < FROM_CLIENT:
                text = websocket.receive(timeout=LONG)
                if text is None:
                    break  # failed or timed out: the check below says which messages are missing
                received.append(text)
        finally:
            for thread in threads:
                thread.join(LONG)
            outcome.update(received=received, failures=failures,
                           close_code=websocket.close_code)
        websocket.send("done")
        for _ in websocket:  # until the client closes
            pass
        return []

    server = serve(WSocketApp(app, max_message_size=None), **server_options(certificate))
    url = ws_url(server).replace("ws://", "wss://")
    received = asyncio.run(exchange(url, certificate["context"], SENDERS, PER_SENDER))
    check_streams(received, ["sender%d" % number for number in range(SENDERS)], PER_SENDER)
    assert outcome["failures"] == []
    assert outcome["close_code"] is None
    check_streams(outcome["received"], ["client"], FROM_CLIENT)
    assert [record.getMessage() for record in wsocket_problems] == []


def test_broadcasts_from_threads_while_the_reactor_reads(serve, certificate, wsocket_problems):
    """The event app: the reactor's loop reads the client while threads broadcast to it."""
    app = WSocketApp(max_queue=None, max_message_size=None)  # no overflow: the client may lag
    received = []
    failures = []
    broadcasters = [threading.Thread(target=lambda tag=tag: broadcast_all(tag))
                    for tag in ("sender%d" % number for number in range(SENDERS))]

    def broadcast_all(tag):
        try:
            for index in range(PER_SENDER):
                app.hub.broadcast(message(tag, index), room="feed")
        except BaseException as error:  # reported by the test, not lost in a thread
            failures.append(error)

    def finish(client):
        for thread in broadcasters:
            thread.join(LONG)
        client.send("done")  # after every broadcast: the client reads up to it

    def onmessage(text, client):
        if text == "start":
            app.hub.join(client, "feed")
            for thread in broadcasters:
                thread.start()
            return
        received.append(text)
        if len(received) == FROM_CLIENT:
            threading.Thread(target=finish, args=(client,)).start()

    app.onmessage = onmessage
    server = serve(app, **server_options(certificate))
    url = ws_url(server).replace("ws://", "wss://")
    from_server = asyncio.run(exchange(url, certificate["context"], SENDERS, PER_SENDER))
    check_streams(from_server, ["sender%d" % number for number in range(SENDERS)], PER_SENDER)
    assert failures == []
    check_streams(received, ["client"], FROM_CLIENT)
    assert [record.getMessage() for record in wsocket_problems] == []


@contextlib.contextmanager
def asyncio_echo_server(context):
    """websockets' asyncio server echoing every message, in a thread of its own; yields its port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="asyncio-echo-server")
    thread.start()

    async def echo(websocket):
        async for text in websocket:
            await websocket.send(text)

    async def start():
        return await asyncio_serve(echo, "127.0.0.1", 0, ssl=context, max_size=None,
                                   compression=None)

    try:
        server = asyncio.run_coroutine_threadsafe(start(), loop).result(TIMEOUT)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()
            asyncio.run_coroutine_threadsafe(server.wait_closed(), loop).result(TIMEOUT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


def test_the_client_sends_from_threads_while_another_receives(certificate, wsocket_problems):
    """wsocket's client over wss://: two threads send (and one pings) while one receives."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificate["certfile"], certificate["keyfile"])
    tags = ["sender%d" % number for number in range(2)]
    with asyncio_echo_server(server_context) as port:
        with connect("wss://127.0.0.1:%d/" % port, ssl_context=certificate["context"],
                     compression=False, max_message_size=None, open_timeout=TIMEOUT,
                     close_timeout=TIMEOUT) as websocket:
            failures = []
            sending = threading.Event()
            sending.set()

            def send_all(tag):
                try:
                    for index in range(FROM_CLIENT):
                        websocket.send(message(tag, index))
                except BaseException as error:
                    failures.append(error)

            def ping_meanwhile():
                try:
                    while sending.is_set():
                        websocket.ping(b"meanwhile")
                        sending.wait(0.001)
                        if not any(thread.is_alive() for thread in senders):
                            return
                except BaseException as error:
                    failures.append(error)

            senders = [threading.Thread(target=send_all, args=(tag,)) for tag in tags]
            pinger = threading.Thread(target=ping_meanwhile)
            for thread in senders:
                thread.start()
            pinger.start()
            received = []
            try:
                while len(received) < len(tags) * FROM_CLIENT:
                    text = websocket.receive(timeout=LONG)
                    if text is None:
                        break
                    received.append(text)
            finally:
                sending.clear()
                for thread in [*senders, pinger]:
                    thread.join(LONG)
            assert failures == []
            assert websocket.close_code is None
            check_streams(received, tags, FROM_CLIENT)
        assert websocket.close_code == 1000
    assert [record.getMessage() for record in wsocket_problems] == []


def test_a_keepalive_interval_beyond_what_poll_can_wait(serve, certificate, wsocket_problems):
    """40 days before a ping: a TLS connection's thread waits with poll(), in steps."""

    def app(environ, start_response):
        websocket = environ["wsgi.websocket"]
        for text in websocket:
            websocket.send("echo: " + text)
        return []

    server = serve(WSocketApp(app, ping_interval=40 * 86400), **server_options(certificate))
    url = ws_url(server).replace("ws://", "wss://")
    with connect(url, ssl_context=certificate["context"], open_timeout=TIMEOUT) as client:
        for text in ("first", "second"):
            client.send(text)
            assert client.receive(timeout=TIMEOUT) == "echo: " + text
    assert [record.getMessage() for record in wsocket_problems] == []
