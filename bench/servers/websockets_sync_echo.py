"""websockets' threading server (websockets.sync.server), default options."""

from bench.servers import announce, port_argument, prepare


def echo(websocket):
    for message in websocket:
        websocket.send(message)


def main():
    prepare()
    port = port_argument()
    from websockets.sync.server import serve
    with serve(echo, "127.0.0.1", port) as server:
        announce(server.socket.getsockname()[1])
        server.serve_forever()


if __name__ == "__main__":
    main()
