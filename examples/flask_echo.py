"""Flask with a WebSocket echo at /ws.

    flask --app flask_echo run                            # development (werkzeug, threaded)
    wsocket flask_echo:app                                # wsocket's own server
    gunicorn -k gthread --threads 100 flask_echo:app      # production

The route is marked ``websocket=True``: werkzeug's router sends WebSocket
requests only to such routes (others answer them 400), and plain HTTP
requests only to the others. The view reads ``request.environ["wsgi.websocket"]``;
Flask still wants a response from it, so it returns an empty one, which
wsocket discards (the 101 went out already).
"""

from flask import Flask, request

from wsocket import WSocketApp

app = Flask(__name__)
app.wsgi_app = WSocketApp(app.wsgi_app)


@app.route("/")
def index():
    return "Flask here: open a WebSocket to /ws\n"


@app.route("/ws", websocket=True)
def echo():
    websocket = request.environ["wsgi.websocket"]
    for message in websocket:
        websocket.send(message)
    return ""
