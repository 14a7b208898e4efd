"""wsgi_echo.py on eventlet's server: ``python eventlet_echo.py [PORT]``.

Monkey-patching first is eventlet's usual way; wsocket's WebSockets wait
through eventlet either way.

eventlet is deprecated upstream (bugfix mode only) and prints a ten-line
warning saying so when imported; the example says it once, in this
docstring, and keeps its start quiet. See docs/deploying.md before
choosing eventlet for something new.
"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import sys  # noqa: E402

import eventlet.wsgi  # noqa: E402

from wsgi_echo import app  # noqa: E402

if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    eventlet.wsgi.server(eventlet.listen(("127.0.0.1", port)), app)
