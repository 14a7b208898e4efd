"""wsocket's event app: ``WSocketApp()`` whose ``onmessage`` sends each message back.

On wsocket's own server (Linux), a connection with no message waiting holds
no thread: it waits in the server's epoll loop, and a worker thread takes
it when a message arrives. Default options otherwise.
"""

from bench.servers import announce, arguments, prepare


def main():
    prepare()
    options = arguments()
    from wsocket import WSocketApp, make_server
    app = WSocketApp()
    if options.broadcast:
        app.onmessage = lambda message, client: app.hub.broadcast(message)
    else:
        app.onmessage = lambda message, client: client.send(message)
    server = make_server("127.0.0.1", options.port, app)
    announce(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
