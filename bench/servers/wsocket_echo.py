"""wsocket: its own threaded server running a plain WSGI echo app under WSocketApp.

Default options (compression accepted when the client offers it, 1 MiB
message limit, keepalive pings), exactly what a user gets.
"""

from bench.servers import announce, arguments, prepare


def echo(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    if websocket is None:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"wsocket echo\n"]
    for message in websocket:
        websocket.send(message)
    return []


def broadcast(environ, start_response):
    """Every message to every client, through the app's hub."""
    websocket = environ.get("wsgi.websocket")
    if websocket is None:
        return echo(environ, start_response)
    hub = environ["wsocket.hub"]
    for message in websocket:
        hub.broadcast(message)
    return []


def main():
    prepare()
    options = arguments()
    from wsocket import WSocketApp, make_server
    app = WSocketApp(broadcast if options.broadcast else echo)
    server = make_server("127.0.0.1", options.port, app)
    announce(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
