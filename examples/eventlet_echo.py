"""wsgi_echo.py on eventlet's server: ``python eventlet_echo.py [PORT]``.

Monkey-patching first is eventlet's usual way; wsocket's WebSockets wait
through eventlet either way.
"""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

import eventlet.wsgi  # noqa: E402

from wsgi_echo import app  # noqa: E402

if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    eventlet.wsgi.server(eventlet.listen(("127.0.0.1", port)), app)
