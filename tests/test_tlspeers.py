"""The TLS sockets given to websockets' sync peers take turns and never hold one while waiting.

(tests/tlspeers.py: websockets reads in one thread and writes in another,
which OpenSSL does not allow on one connection.)
"""

import contextlib
import socket
import ssl
import threading

from websockets.sync.client import connect

from tests.netutil import TIMEOUT, ws_url
from tests.tlspeers import TurnTakingSSLSocket, taking_turns
from wsocket import WSocketApp


@contextlib.contextmanager
def tls_pair(certificate):
    """(client, server): a TLS 1.3 connection, the client's socket taking turns."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificate["certfile"], certificate["keyfile"])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        raw = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        accepted, _ = listener.accept()
        accepted.settimeout(TIMEOUT)
        server = []
        handshake = threading.Thread(target=lambda: server.append(
            server_context.wrap_socket(accepted, server_side=True)))
        handshake.start()
        client = certificate["threaded_peer_context"].wrap_socket(
            raw, server_hostname="127.0.0.1")
        handshake.join(TIMEOUT)
        with client, server[0]:
            assert client.version() == "TLSv1.3"  # session tickets follow the handshake
            yield client, server[0]


def in_thread(call):
    """Start ``call()`` in a thread; returns (thread, what it returned or raised)."""
    outcome = []

    def run():
        try:
            outcome.append(call())
        except Exception as error:  # reported by the test that reads outcome
            outcome.append(error)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_the_context_makes_turn_taking_sockets(certificate):
    context = taking_turns(ssl.create_default_context())
    assert context.sslsocket_class is TurnTakingSSLSocket
    assert certificate["threaded_peer_context"].sslsocket_class is TurnTakingSSLSocket


def test_a_write_goes_out_while_another_thread_waits_to_read(certificate):
    """The upgrade request case: the reader waits (past the session tickets) without its turn."""
    with tls_pair(certificate) as (client, server):
        reader, received = in_thread(lambda: client.recv(100))
        reader.join(0.2)
        assert reader.is_alive() and received == []  # waiting: nothing was sent to it
        client.sendall(b"GET / HTTP/1.1\r\n\r\n")  # would wait for the reader's turn otherwise
        assert server.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
        server.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        reader.join(TIMEOUT)
        assert received == [b"HTTP/1.1 101 Switching Protocols\r\n\r\n"]


def test_a_read_goes_on_while_another_thread_waits_to_write(certificate):
    """A write the peer does not read yet waits outside its turn: the reader still reads."""
    with tls_pair(certificate) as (client, server):
        big = bytes(range(256)) * (128 * 1024)  # 32 MiB: more than the socket buffers hold
        writer, wrote = in_thread(lambda: client.sendall(big))
        writer.join(0.3)
        assert writer.is_alive()  # the server reads nothing yet: the write waits
        server.sendall(b"meanwhile")
        assert client.recv(100) == b"meanwhile"
        assert writer.is_alive()
        received = bytearray()
        while len(received) < len(big):
            received += server.recv(1 << 16)
        writer.join(TIMEOUT)
        assert wrote == [None] and received == big


def test_websockets_sync_client_uses_it_and_pings_while_it_sends_and_reads(serve, certificate):
    app = WSocketApp()
    app.onmessage += lambda message, client: client.send(message)
    server = serve(app, certfile=certificate["certfile"], keyfile=certificate["keyfile"])
    url = ws_url(server).replace("ws://", "wss://")
    with connect(url, ssl=certificate["threaded_peer_context"], open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT, ping_interval=0.01, max_size=None) as client:
        assert type(client.socket) is TurnTakingSSLSocket
        messages = [bytes([number % 256]) * (number * 997 % 70000) for number in range(200)]
        sender, _ = in_thread(lambda: [client.send(message) for message in messages])
        echoes = [client.recv(timeout=TIMEOUT) for _ in messages]
        sender.join(TIMEOUT)
        assert echoes == messages
