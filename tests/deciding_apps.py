"""An event app that decides before the 101, for the browser test: ``tests.deciding_apps:app``.

``/`` is a blank page; a WebSocket to ``/ws?token=good`` is accepted (and
told its user), any other token is refused with 403 before the handshake.
"""

from wsocket import Response, WSocketApp

app = WSocketApp()


@app.route("/")
def page(environ, start_response):
    return "<!doctype html><title>deciding</title><p>blank</p>"


@app.onrequest
def check(client):
    if client.environ.get("QUERY_STRING") != "token=good":
        return Response("forbidden\n", 403)
    client.data["user"] = "alice"
    return None


app.onconnect += lambda client: client.send("hello " + client.data["user"])
app.onmessage += lambda message, client: client.send(message)
