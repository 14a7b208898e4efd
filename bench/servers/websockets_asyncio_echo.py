"""websockets' asyncio server (websockets.asyncio.server), default options."""

import asyncio

from bench.servers import announce, arguments, prepare

CLIENTS = set()


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def broadcast(websocket):
    from websockets.asyncio.server import broadcast as send_to_all
    CLIENTS.add(websocket)
    try:
        async for message in websocket:
            send_to_all(CLIENTS, message)
    finally:
        CLIENTS.discard(websocket)


async def serve(port, handler):
    from websockets.asyncio.server import serve
    async with serve(handler, "127.0.0.1", port) as server:
        announce(server.sockets[0].getsockname()[1])
        await server.serve_forever()


def main():
    prepare()
    options = arguments()
    asyncio.run(serve(options.port, broadcast if options.broadcast else echo))


if __name__ == "__main__":
    main()
