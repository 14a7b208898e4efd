"""Flask: only logged-in users get a WebSocket, decided by the session cookie before the 101.

    flask --app auth_flask run            # or: wsocket auth_flask:app

Open http://127.0.0.1:5000/login once (it sets the session cookie), then a
WebSocket to /ws: the browser sends the cookie with the handshake. Without
it the view answers 401 and the WebSocket never opens (the page sees
``error`` then ``close`` 1006). Keep ``allowed_origins``: a cookie is sent
whatever site opened the WebSocket.
"""

from flask import Flask, request, session

from wsocket import WSocketApp

app = Flask(__name__)
app.secret_key = "change me"  # signs the session cookie
app.wsgi_app = WSocketApp(app.wsgi_app, allowed_origins=["http://127.0.0.1:5000",
                                                         "http://localhost:5000"])


@app.route("/login")
def login():
    session["user"] = "alice"
    return "logged in as alice\n"


@app.route("/ws", websocket=True)
def chat():
    user = session.get("user")
    if user is None:
        return "log in first\n", 401  # an HTTP answer: no 101, the WebSocket never opens
    websocket = request.environ["wsgi.websocket"]
    for message in websocket:  # the first use sends the 101
        websocket.send("%s: %s" % (user, message))
    return ""  # Flask wants a response; after a WebSocket it is not sent
