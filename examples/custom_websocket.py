"""A WebSocket subclass: round-trip times measured with its own pings.

    python custom_websocket.py [PORT]    # ws://127.0.0.1:8080/ (0: any free port)

Send "ping": the server pings you with the time in the payload, and its
``handle_pong`` answers with how long your pong took.
"""

import sys
import time

from wsocket import WebSocket, WSocketApp, run


class LatencyWebSocket(WebSocket):
    def ping_now(self):
        self.ping(b"t=%d" % time.monotonic_ns())  # a ping payload: at most 125 bytes

    def handle_pong(self, payload):
        # Called for every pong, inside receive(); keepalive pongs carry b"keepalive".
        if payload.startswith(b"t="):
            elapsed = (time.monotonic_ns() - int(payload[2:])) / 1e6
            self.send("pong after %.2f ms" % elapsed)


app = WSocketApp(websocket_class=LatencyWebSocket)


def on_message(message, client):
    if message == "ping":
        client.ping_now()
    else:
        client.send('send "ping" to measure the round trip')


app.onmessage += on_message

if __name__ == "__main__":
    run(app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080)
