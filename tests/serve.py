"""Starts one kind of WSGI server for the tests: ``python -m tests.serve KIND PORT [module:app]``.

Each server is started the way its documentation shows, on 127.0.0.1.
Servers with a command line of their own (gunicorn, waitress, uWSGI) are
started through it by the tests instead.
"""

import importlib
import sys


def load(spec):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name or "app")


def werkzeug(port, app, threaded=True):
    from werkzeug.serving import run_simple
    run_simple("127.0.0.1", port, app, threaded=threaded)


def werkzeug_unthreaded(port, app):
    werkzeug(port, app, threaded=False)


def gevent(port, app):
    # Not monkey-patched on purpose: the WebSocket must wait through gevent
    # on its own, or the 20 concurrent connections of the tests would stall.
    from gevent.pywsgi import WSGIServer
    WSGIServer(("127.0.0.1", port), app).serve_forever()


def eventlet(port, app):
    # Not monkey-patched either, for the same reason.
    import eventlet
    import eventlet.wsgi
    eventlet.wsgi.server(eventlet.listen(("127.0.0.1", port)), app)


def wsgiref(port, app):
    from wsgiref.simple_server import make_server
    make_server("127.0.0.1", port, app).serve_forever()


def main(argv):
    kind, port = argv[0], int(argv[1])
    app = load(argv[2] if len(argv) > 2 else "tests.matrix_app:app")
    print("serving %s on 127.0.0.1:%d" % (kind, port), file=sys.stderr, flush=True)
    try:
        globals()[kind](port, app)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
