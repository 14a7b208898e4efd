"""Bottle with a WebSocket echo at /ws, served by gunicorn through ``bottle.run``.

    python bottle_echo.py [PORT]                          # gunicorn -k gthread, via bottle
    gunicorn -k gthread --threads 100 bottle_echo:app     # the same from the command line

(bottle's default server, wsgiref, cannot hand its socket over: wsocket
answers upgrades there with 501 and says so in the log.)
"""

import sys

import bottle

from wsocket import WSocketApp

bottle_app = bottle.Bottle()


@bottle_app.route("/")
def index():
    return "Bottle here: open a WebSocket to /ws\n"


@bottle_app.route("/ws")
def echo():
    websocket = bottle.request.environ.get("wsgi.websocket")
    if websocket is None:
        bottle.abort(400, "this URL speaks WebSocket")
    for message in websocket:
        websocket.send(message)
    return ""  # bottle's response is discarded: the 101 went out already


app = WSocketApp(bottle_app)

if __name__ == "__main__":
    bottle.run(app, server="gunicorn", host="127.0.0.1",
               port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080,
               worker_class="gthread", threads=100)
