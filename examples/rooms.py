"""Rooms: a WebSocket's path names its room; each message goes to the others in it.

    python rooms.py [PORT]    # ws://127.0.0.1:8080/ROOM (0: any free port)

``app.hub`` is the hub every WSocketApp has: ``join`` puts a client in a
room, ``broadcast`` hands a message to every client of a room (of every
process, with a Redis hub) without waiting for a slow one. A client leaves
its rooms by itself when its connection ends.
"""

import sys

from wsocket import WSocketApp, run

app = WSocketApp()


def on_connect(client):
    client.room = client.path.strip("/") or "lobby"
    app.hub.join(client, client.room)
    others = len(app.hub.clients(client.room)) - 1
    client.send("you are in %s with %d other(s)" % (client.room, others))


def on_message(message, client):
    app.hub.broadcast(message, room=client.room, exclude=client)  # everyone else in the room


app.onconnect += on_connect
app.onmessage += on_message

if __name__ == "__main__":
    run(app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080)
