"""Misbehaving WSGI apps for tests/test_reliability.py: ``tests.fault_apps:faults``.

One app, by path: ``/raise`` raises right after the upgrade, ``/never-read``
sends a tick every 0.2 s and never reads, ``/block`` sleeps forever, and
every other path echoes (``tests.apps.echo``), so one server process shows
that the others are still served while those misbehave.
"""

import time

from tests.apps import echo
from wsocket import WSocketApp


def faults(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    path = environ["PATH_INFO"]
    if websocket is None:
        return echo(environ, start_response)
    if path == "/raise":
        websocket.accept()  # the 101 first: this app breaks after it (before it: a 500)
        raise RuntimeError("the app broke right after the upgrade")
    if path == "/never-read":
        # Messages pile up unread; the thread ends when a send fails (the
        # client went away).
        count = 0
        while True:
            count += 1
            websocket.send("tick %d" % count)
            time.sleep(0.2)
    if path == "/block":
        websocket.accept()
        while True:  # never returns, never reads: only the process's end stops it
            time.sleep(0.1)
    return echo(environ, start_response)


# Only this origin may open a WebSocket; others get 403.
origin_checked = WSocketApp(echo, allowed_origins=["http://good.example"])
