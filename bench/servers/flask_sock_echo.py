"""Flask + flask-sock (simple-websocket, wsproto) under werkzeug's threaded server."""

import logging

from bench.servers import announce, port_argument, prepare


def main():
    prepare()
    port = port_argument()
    from flask import Flask
    from flask_sock import Sock
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log
    app = Flask(__name__)
    sock = Sock(app)

    @sock.route("/")
    def echo(ws):
        while True:
            ws.send(ws.receive())

    server = make_server("127.0.0.1", port, app, threaded=True)
    announce(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
