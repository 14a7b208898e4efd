"""The client: send each argument as a text message and print the answer to each.

    python client.py ws://127.0.0.1:8080/ws hello world    # e.g. against wsgi_echo.py

``wsocket.connect`` returns the same ``WebSocket`` as a server has, with the
same methods; leaving the ``with`` block closes it (code 1000).
"""

import sys

import wsocket


def main(url, messages):
    try:
        with wsocket.connect(url, open_timeout=10) as websocket:
            for message in messages:
                websocket.send(message)
                print(websocket.receive(timeout=10))
    except wsocket.ConnectError as error:  # refused, unreachable, timed out, TLS failed
        sys.exit("cannot connect: %s" % error)
    except wsocket.InvalidStatus as error:  # an HTTP answer instead of the 101
        sys.exit("the server answered %d instead of a WebSocket" % error.status)
    except wsocket.ConnectionClosed as error:  # the server closed first
        sys.exit("closed by the server: %s" % error)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
