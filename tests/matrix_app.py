"""The app every server of the test matrix serves (``tests.matrix_app:app``).

``/`` echoes; ``/describe`` first sends what was negotiated, then echoes;
``/close`` sends one message, then closes with code 4001 and a reason; any
request without an upgrade gets a short plain-text page.
"""

import logging
import os
import sys

from wsocket import WSocketApp

CLOSE_CODE = 4001
CLOSE_REASON = "bye from the server"
MAX_MESSAGE_SIZE = 8 * 1024 * 1024


def _configure_logging():
    # Whatever wsocket logs reaches the server's stderr, where the tests look
    # for errors; every server below logs its own way, so give wsocket a handler.
    logger = logging.getLogger("wsocket")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s wsocket: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def matrix(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    path = environ.get("PATH_INFO", "/")
    if websocket is None:
        body = ("plain HTTP %s %s" % (environ["REQUEST_METHOD"], path)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/describe":
        websocket.send("protocol=%s compress=%s" % (websocket.protocol, websocket.do_compress))
    elif path == "/close":
        websocket.send("closing")
        websocket.close(CLOSE_CODE, CLOSE_REASON)
        return []
    for message in websocket:
        websocket.send(message)
    return []


if os.environ.get("WSOCKET_TEST_SERVER"):  # set by tests.serverproc for its servers only
    _configure_logging()
app = WSocketApp(matrix, protocols=["superchat", "chat"], max_message_size=MAX_MESSAGE_SIZE)


def wrapped(environ, start_response):
    """``app`` behind a middleware that wraps ``start_response``, as many do."""
    def start(status, headers, exc_info=None):
        return start_response(status, headers, exc_info)
    return app(environ, start)


# For tests/test_uwsgi.py: origins checked, and pings every half second.
GOOD_ORIGIN = "https://good.example"
checked = WSocketApp(matrix, protocols=["chat"], allowed_origins=[GOOD_ORIGIN],
                     ping_interval=0.5, ping_timeout=2.0)
