"""websockets' threading server (websockets.sync.server), default options."""

import threading

from bench.servers import announce, arguments, prepare

CLIENTS = set()
LOCK = threading.Lock()


def echo(websocket):
    for message in websocket:
        websocket.send(message)


def broadcast(websocket):
    from websockets.exceptions import ConnectionClosed
    with LOCK:
        CLIENTS.add(websocket)
    try:
        for message in websocket:
            with LOCK:
                clients = list(CLIENTS)
            for client in clients:
                try:
                    client.send(message)
                except ConnectionClosed:
                    pass
    finally:
        with LOCK:
            CLIENTS.discard(websocket)


def main():
    prepare()
    options = arguments()
    from websockets.sync.server import serve
    with serve(broadcast if options.broadcast else echo, "127.0.0.1", options.port) as server:
        announce(server.socket.getsockname()[1])
        server.serve_forever()


if __name__ == "__main__":
    main()
