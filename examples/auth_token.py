"""The event app: a token checked by ``onrequest`` before the 101.

    python auth_token.py [PORT]

Browsers cannot set ``Authorization`` on a WebSocket, so a page passes its
token in the query (``new WebSocket("ws://host/ws?token=...")``) or as a
subprotocol (``new WebSocket(url, ["token.abc123"])``); the 101 must then
name one of the offered subprotocols, which ``client.accept()`` does.
"""

import sys
from urllib.parse import parse_qs

from wsocket import Response, WSocketApp, run

USERS = {"abc123": "alice", "def456": "bob"}  # token -> user, from your own store

app = WSocketApp()


def token_of(client):
    query = parse_qs(client.environ.get("QUERY_STRING", ""))
    if "token" in query:
        return query["token"][0], None
    for offered in client.environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "").split(","):
        offered = offered.strip()
        if offered.startswith("token."):
            return offered[len("token."):], offered
    return None, None


@app.onrequest
def authenticate(client):
    token, protocol = token_of(client)
    user = USERS.get(token)
    if user is None:
        return Response("unknown token\n", 401, {"WWW-Authenticate": "Bearer"})
    client.data["user"] = user  # the handlers read it
    client.accept(protocol=protocol)  # None: no subprotocol (the token came in the query)
    return None


app.onconnect += lambda client: client.send("hello %s" % client.data["user"])
app.onmessage += lambda message, client: client.send("%s: %s" % (client.data["user"],
                                                                 message))

if __name__ == "__main__":
    run(app, port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080)
