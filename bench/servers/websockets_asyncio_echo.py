"""websockets' asyncio server (websockets.asyncio.server), default options."""

import asyncio

from bench.servers import announce, port_argument, prepare


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def serve(port):
    from websockets.asyncio.server import serve
    async with serve(echo, "127.0.0.1", port) as server:
        announce(server.sockets[0].getsockname()[1])
        await server.serve_forever()


def main():
    prepare()
    asyncio.run(serve(port_argument()))


if __name__ == "__main__":
    main()
