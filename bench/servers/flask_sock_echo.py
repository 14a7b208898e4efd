"""Flask + flask-sock (simple-websocket, wsproto) under werkzeug's threaded server."""

import logging
import threading

from bench.servers import announce, arguments, prepare


def main():
    prepare()
    options = arguments()
    from flask import Flask
    from flask_sock import Sock
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log
    app = Flask(__name__)
    sock = Sock(app)

    clients = set()
    lock = threading.Lock()

    def echo(ws):
        while True:
            ws.send(ws.receive())

    def broadcast(ws):
        with lock:
            clients.add(ws)
        try:
            while True:
                message = ws.receive()
                with lock:
                    everyone = list(clients)
                for client in everyone:
                    try:
                        client.send(message)
                    except Exception:  # simple_websocket.ConnectionClosed: it left
                        pass
        finally:
            with lock:
                clients.discard(ws)

    sock.route("/")(broadcast if options.broadcast else echo)
    server = make_server("127.0.0.1", options.port, app, threaded=True)
    announce(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
