"""wsocket's event app under a supervisor with ``--workers N`` processes (``python -m bench.workers``).

The same app as ``wsocket_events_echo``; ``--workers`` (default 2) worker
processes share the port through SO_REUSEPORT. Not in ``python -m bench``'s
table, which runs every server on one CPU: ``python -m bench.workers`` runs
it unpinned against one worker.
"""

import argparse

from bench.servers import announce, prepare


def main():
    prepare()
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    from wsocket import WSocketApp, make_server
    from wsocket.workers import Supervisor
    app = WSocketApp()
    app.onmessage = lambda message, client: client.send(message)
    supervisor = Supervisor(
        lambda shared: make_server("127.0.0.1", supervisor.port, app, reuse_port=True),
        ("127.0.0.1", options.port), options.workers)
    supervisor.bind()
    supervisor.run(on_ready=lambda: announce(supervisor.port))


if __name__ == "__main__":
    main()
