"""A plain WSGI function with a WebSocket echo at /ws, on any server.

    python wsgi_echo.py [PORT]                            # wsocket's own server
    gunicorn -k gthread --threads 100 wsgi_echo:app       # gunicorn, a thread per connection
    gunicorn -k gevent wsgi_echo:app                      # gunicorn, a greenlet per connection
    python gevent_echo.py / python eventlet_echo.py       # gevent's pywsgi, eventlet.wsgi

Then open a WebSocket to ws://127.0.0.1:8080/ws (the page at / does).
"""

import sys

from wsocket import WSocketApp, run

PAGE = b"""<!doctype html>
<title>wsocket echo</title>
<p id="log">connecting...</p>
<script>
const ws = new WebSocket(location.href.replace(/^http/, "ws").replace(/\\/?$/, "/ws"));
ws.onopen = () => ws.send("hello");
ws.onmessage = (event) => { document.getElementById("log").textContent = "echo: " + event.data; };
</script>
"""


def echo(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    if websocket is None:  # plain HTTP: whatever the app does today
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(PAGE)))])
        return [PAGE]
    for message in websocket:  # ends when the client closes
        websocket.send(message)
    return []


app = WSocketApp(echo)

if __name__ == "__main__":
    run(app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080)
