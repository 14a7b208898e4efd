"""The WSGI app of tests/test_http_edge.py: it says what it saw, or answers badly on purpose.

Served by wsocket's server and by gunicorn (gthread) alike. Every path but
``/split/...`` and ``/noread`` reads the whole body and answers, as JSON,
the method, path, query, the headers (``HTTP_*``, ``CONTENT_*``) and the body.
"""

import json

from wsocket import WSocketApp

# /route/read: a route of wsocket's framework that reads the body.
routes = WSocketApp()


@routes.route("/route/read")
def read_body(environ, start_response):
    return environ["wsgi.input"].read()


# /split/<name>: a status or header that would split the response if it reached the wire.
SPLITTING = {
    "value-crlf": ("200 OK", [("X-Injected", "a\r\nSet-Cookie: pwn=1")]),
    "value-lf": ("200 OK", [("X-Injected", "a\nSet-Cookie: pwn=1")]),
    "value-cr": ("200 OK", [("X-Injected", "a\rSet-Cookie: pwn=1")]),
    "value-nul": ("200 OK", [("X-Injected", "a\x00b")]),
    "name-crlf": ("200 OK", [("Set-Cookie: pwn=1\r\nX-Injected", "a")]),
    "name-not-token": ("200 OK", [("X(A)", "a")]),
    "name-space": ("200 OK", [("X Injected", "a")]),
    "status-crlf": ("200 OK\r\nSet-Cookie: pwn=1", []),
    "status-lf": ("200 OK\nSet-Cookie: pwn=1", []),
}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/route/"):
        return routes(environ, start_response)
    if path.startswith("/split/"):
        status, headers = SPLITTING[path[len("/split/"):]]
        start_response(status, headers + [("Content-Type", "text/plain")])
        return [b"split?"]
    if path.startswith("/short/"):  # promises 10 bytes, sends fewer
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [path[len("/short/"):].encode()] if path != "/short/" else []
    if path == "/noread":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        return [b"noread"]
    body = environ["wsgi.input"].read()
    seen = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "target": environ.get("REQUEST_URI", environ.get("RAW_URI")),
        "query": environ.get("QUERY_STRING", ""),
        "headers": {key: value for key, value in environ.items()
                    if key.startswith(("HTTP_", "CONTENT_")) and isinstance(value, str)},
        "body": body.decode("latin-1"),
    }
    data = json.dumps(seen).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
