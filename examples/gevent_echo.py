"""wsgi_echo.py on gevent's pywsgi server: ``python gevent_echo.py [PORT]``.

Monkey-patching first is gevent's usual way (gunicorn -k gevent does it
too); wsocket's WebSockets wait through gevent either way.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from wsgi_echo import app  # noqa: E402

if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    print("gevent serving on http://127.0.0.1:%d/" % port, flush=True)
    WSGIServer(("127.0.0.1", port), app).serve_forever()
