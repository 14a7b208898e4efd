"""An event app for the ``--workers`` tests: ``tests.workers_app:app``.

Text ``"pid"`` -> this worker's process id; ``"say:TEXT"`` -> a hub
broadcast of TEXT to every client of every worker; ``"count"`` -> how many
clients this worker's hub has. Anything else is echoed.
"""

import os

from wsocket import WSocketApp

app = WSocketApp()


def command(message, client):
    if message == "pid":
        client.send(str(os.getpid()))
    elif message == "count":
        client.send(str(len(app.hub.clients())))
    elif isinstance(message, str) and message.startswith("say:"):
        app.hub.broadcast(message[len("say:"):])
    else:
        client.send(message)


app.onmessage = command
