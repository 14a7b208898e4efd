"""picows on uvloop: a frame-level WebSocket server in Cython, on libuv's event loop.

The fastest Python WebSocket server we know of, and the peer issue 17's goals
are set against. picows hands the listener one frame at a time, not whole
messages, so the echo sends each data frame back as it came (its type and FIN
bit kept): a fragmented message comes back fragmented, the same message. Its
own defaults otherwise (pings answered by picows, aiofastnet for the sockets
when it is installed, as picows' dependencies install it). A close frame is
answered with the same code and the connection ends.

With ``--broadcast`` each data frame goes to every connected client, a loop
over their transports (picows has no broadcast of its own; its ``send`` only
queues bytes on the transport, so the loop never waits for a slow client).
"""

from __future__ import annotations

from typing import Any

from bench.servers import announce, arguments, prepare


def make_listener_class(broadcast: bool) -> type:
    """The WSListener subclass (picows is imported only once the launcher runs)."""
    from picows import WSListener, WSMsgType

    connected: set[Any] = set()  # --broadcast: every open transport

    class EchoListener(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            if broadcast:
                connected.add(transport)

        def on_ws_disconnected(self, transport: Any) -> None:
            connected.discard(transport)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            kind = frame.msg_type
            if kind == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
                return
            if kind == WSMsgType.PONG:
                return
            # The payload view is valid only during this call; send() copies it.
            payload = frame.get_payload_as_memoryview()
            if broadcast:
                for each in connected:
                    each.send(kind, payload, frame.fin)
            else:
                transport.send(kind, payload, frame.fin)

    return EchoListener


async def serve(port: int, broadcast: bool) -> None:
    from picows import ws_create_server
    listener_class = make_listener_class(broadcast)
    server = await ws_create_server(lambda request: listener_class(), "127.0.0.1", port)
    announce(server.sockets[0].getsockname()[1])
    await server.serve_forever()


def main() -> None:
    prepare()
    options = arguments()
    import uvloop
    uvloop.run(serve(options.port, options.broadcast))


if __name__ == "__main__":
    main()
