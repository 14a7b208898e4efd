"""The WSGI apps ``python -m bench.http`` serves: hello world and a 64 KiB page.

``hello``: 12 bytes with Content-Length. ``page``: 64 KiB with
Content-Length. ``page_streamed``: the same 64 KiB as 16 pieces of 4 KiB
without a length (chunked under HTTP/1.1).
"""

HELLO = b"Hello world!"
PAGE = (b"<p>" + b"x" * 1016 + b"</p>\n") * 64  # 64 KiB of HTML
PIECES = [PAGE[i:i + 4096] for i in range(0, len(PAGE), 4096)]


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def page(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(PAGE)))])
    return [PAGE]


def page_streamed(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/html")])
    return iter(PIECES)
