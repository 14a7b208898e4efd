"""Events: a chat room in a few handlers, with its page served by a route.

    python events.py [PORT]    # open http://127.0.0.1:8080/ in two tabs (0: any free port)

``onconnect``, ``onmessage`` and ``onclose`` run in each connection's own
thread, in message order. The page is a route at ``/``; its WebSocket goes
to ``/chat``, a path with no route, so the events handle it.
"""

import itertools
import sys

from wsocket import WSocketApp, run

app = WSocketApp()
numbers = itertools.count(1)


def broadcast(text):
    # To every client; never waits for a slow one (see docs/broadcast.md).
    app.hub.broadcast(text)


def on_connect(client):
    client.name = "guest%d" % next(numbers)
    client.send("welcome, %s: %d here" % (client.name, len(app.clients)))
    broadcast("%s joined" % client.name)


def on_message(message, client):
    broadcast("%s: %s" % (client.name, message))


def on_close(reason, client):
    broadcast("%s left (%d)" % (client.name, client.close_code))


app.onconnect += on_connect
app.onmessage += on_message
app.onclose += on_close


@app.route("/")
def page(environ, start_response):
    start_response()
    return """<!doctype html><meta charset="utf-8"><title>chat</title>
<ul id="log"></ul><form id="f"><input id="m" autofocus><button>Send</button></form>
<script>
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/chat");
ws.onmessage = (e) => { const li = document.createElement("li"); li.textContent = e.data;
                        document.getElementById("log").appendChild(li); };
document.getElementById("f").onsubmit = (e) => { e.preventDefault();
  const m = document.getElementById("m"); ws.send(m.value); m.value = ""; };
</script>"""


if __name__ == "__main__":
    run(app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080)
