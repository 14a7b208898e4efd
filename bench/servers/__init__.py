"""One small launcher per server under test, each run as its own process.

Every launcher binds 127.0.0.1 (``--port 0``: a free port), prints
``READY <port>`` on stdout once it accepts connections, serves an echo
WebSocket at ``/`` (every message sent back as it came: text as text, binary
as binary) and exits at once on SIGTERM. They log nothing below WARNING.
With ``--broadcast`` every message goes to every connected client instead
(``python -m bench.broadcast``), each server the way its users would do it.

``SERVERS`` lists them in the order the table shows them; ``requires`` names
the modules a launcher needs (the bench prints "not installed" without them).
"""

import importlib.util
import os
import resource
import signal
import sys

# name: (module under bench.servers, modules it needs, what it is)
SERVERS = {
    "wsocket": ("wsocket_echo", ["wsocket"],
                "wsocket's own server, WSocketApp(echo app) with default options"),
    "wsocket-events": ("wsocket_events_echo", ["wsocket"],
                       "wsocket's own server, the event app: WSocketApp() with onmessage echoing"),
    "websockets-sync": ("websockets_sync_echo", ["websockets"],
                        "websockets.sync.server.serve (a thread per connection)"),
    "websockets-asyncio": ("websockets_asyncio_echo", ["websockets"],
                           "websockets.asyncio.server.serve (one event loop)"),
    "flask-sock": ("flask_sock_echo", ["flask", "flask_sock"],
                   "Flask + flask-sock under werkzeug's threaded server"),
    "minimal": ("minimal_echo", [],
                "threaded raw-socket echo, no validation at all: the ceiling for a Python server"),
}


def missing(name):
    """The modules ``name`` needs that are not installed (empty when it can run)."""
    return [module for module in SERVERS[name][1] if importlib.util.find_spec(module) is None]


def prepare():
    """Call first in every launcher: as many open files as allowed, quick exit on SIGTERM."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # The bench kills servers between runs; a graceful stop of thousands of
    # connections would only cost time.
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))


def announce(port):
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()


def port_argument(argv=None):
    return arguments(argv).port


def arguments(argv=None):
    """The launchers' command line: ``--port N`` and ``--broadcast``."""
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--broadcast", action="store_true",
                        help="send every message to every client instead of echoing it")
    return parser.parse_args(argv)
