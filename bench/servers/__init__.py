"""One small launcher per server under test, each run as its own process.

Every launcher binds 127.0.0.1 (``--port 0``: a free port), prints
``READY <port>`` on stdout once it accepts connections, serves an echo
WebSocket at ``/`` (every message sent back as it came: text as text, binary
as binary) and exits at once on SIGTERM. They log nothing below WARNING.
With ``--broadcast`` every message goes to every connected client instead
(``python -m bench.broadcast``), each server the way its users would do it.

``SERVERS`` lists them in the order the table shows them; ``requires`` names
the modules a launcher needs, or ``cc`` for a C compiler (the bench prints
"not installed" without them). ``PEER`` and ``C_CEILING`` are the two
references issue 17 sets wsocket's goals against: the bench reports
wsocket and wsocket-events as ratios of each (``REFERENCES``).
"""

import importlib.util
import os
import resource
import shutil
import signal
import sys

C_COMPILER = "cc"  # a requirement: the machine's C compiler, whichever it is called
PEER = "picows"
C_CEILING = "c-epoll-echo"

# name: (module under bench.servers, what it needs, what it is)
SERVERS = {
    "wsocket": ("wsocket_echo", ["wsocket"],
                "wsocket's own server, WSocketApp(echo app) with default options"),
    "wsocket-events": ("wsocket_events_echo", ["wsocket"],
                       "wsocket's own server, the event app: WSocketApp() with onmessage echoing"),
    "websockets-sync": ("websockets_sync_echo", ["websockets"],
                        "websockets.sync.server.serve (a thread per connection)"),
    "websockets-asyncio": ("websockets_asyncio_echo", ["websockets"],
                           "websockets.asyncio.server.serve (one event loop)"),
    "picows": ("picows_echo", ["picows", "uvloop"],
               "picows on uvloop (Cython, frame by frame): the fastest Python peer"),
    "flask-sock": ("flask_sock_echo", ["flask", "flask_sock"],
                   "Flask + flask-sock under werkzeug's threaded server"),
    "minimal": ("minimal_echo", [],
                "threaded raw-socket echo, no validation at all: the ceiling for a Python server"),
    C_CEILING: ("c_epoll_echo", [C_COMPILER],
                "loadgen.c --serve: single-threaded C epoll echo, the ceiling for any server"),
}

# The servers wsocket is divided by in the ratio table, in its column order.
REFERENCES = [PEER, "minimal", C_CEILING]


def c_compiler():
    """The path of the machine's C compiler (cc, gcc or clang), or None."""
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def missing(name):
    """What ``name`` needs that is not installed (empty when it can run)."""
    def available(requirement):
        if requirement == C_COMPILER:
            return c_compiler() is not None
        return importlib.util.find_spec(requirement) is not None
    return [requirement for requirement in SERVERS[name][1] if not available(requirement)]


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
