"""WSGI apps the tests serve, as ``tests.apps:NAME`` on the command line."""

from wsocket import WSocketApp


def echo(environ, start_response):
    """Echo every WebSocket message exactly; plain HTTP gets a short text."""
    websocket = environ.get("wsgi.websocket")
    if websocket is None:
        body = ("plain HTTP %s %s" % (environ["REQUEST_METHOD"], environ["PATH_INFO"])).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    for message in websocket:
        websocket.send(message)
    return []


# The same echo with a size limit fit for the Autobahn Testsuite's 16 MiB cases.
echo_unlimited = WSocketApp(echo, max_message_size=16 * 1024 * 1024 + 1024)

# Subprotocols in the server's order of preference.
echo_chat = WSocketApp(echo, protocols=["superchat", "chat"])
