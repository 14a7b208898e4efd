"""``python -m tests.slow_accept_server``: the echo app on a server whose accepting thread lags.

Each accepted connection's thread starts, then the accepting thread waits
two seconds before it goes back to poll(): long enough for a client to be
answered and for a signal to land while the accepting thread is still in
``process_request``, as it may on a busy machine where that thread gets
the CPU last.
"""

import time

from tests.apps import echo
from wsocket.server import WSocketServer, run


class SlowAcceptServer(WSocketServer):
    def process_request(self, request, client_address):
        super().process_request(request, client_address)
        time.sleep(2.0)


if __name__ == "__main__":
    run(echo, port=0, server_class=SlowAcceptServer)
