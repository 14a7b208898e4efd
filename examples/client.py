"""The client: send each argument as a text message and print the answer to each.

    python client.py ws://127.0.0.1:8080/ws hello world    # e.g. against wsgi_echo.py

``wsocket.connect`` returns the same ``WebSocket`` as a server has, with the
same methods; leaving the ``with`` block closes it (code 1000).
"""

import sys

import wsocket


def main(url, messages):
    with wsocket.connect(url, open_timeout=10) as websocket:
        for message in messages:
            websocket.send(message)
            print(websocket.receive(timeout=10))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
