"""wsocket: its own threaded server running a plain WSGI echo app under WSocketApp.

Default options (compression accepted when the client offers it, 1 MiB
message limit, keepalive pings), exactly what a user gets.
"""

from bench.servers import announce, port_argument, prepare


def echo(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    if websocket is None:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"wsocket echo\n"]
    for message in websocket:
        websocket.send(message)
    return []


def main():
    prepare()
    port = port_argument()
    from wsocket import WSocketApp, make_server
    server = make_server("127.0.0.1", port, WSocketApp(echo))
    announce(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
