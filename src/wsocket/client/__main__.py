"""The terminal client: ``python -m wsocket.client URL`` or ``wsocket connect URL``.

Each line read from stdin goes out as a text message; every message that
arrives is printed (binary ones as a hex summary). At the end of stdin it
waits until the server has been quiet for ``--wait`` seconds, so replies to
the last lines are printed, then closes.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import ConnectionClosed
from . import connect

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..websocket import WebSocket


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wsocket connect", description="Talk to a WebSocket server from the terminal.")
    parser.add_argument("url", help="ws:// or wss:// URL")
    parser.add_argument("--subprotocol", "--protocol", action="append", dest="protocols",
                        metavar="NAME", help="offer this subprotocol (repeatable, in order of "
                        "preference)")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="extra request header (repeatable)")
    parser.add_argument("--proxy", metavar="URL",
                        help="http://[user:password@]host:port, socks5://... or socks5h://... "
                        "('none': connect directly; default: from the environment)")
    parser.add_argument("--origin", help="Origin header")
    parser.add_argument("--no-compression", action="store_true", help="do not offer deflate")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    parser.add_argument("--cafile", help="trust this CA bundle for wss://")
    parser.add_argument("--timeout", type=float, default=10, help="seconds to connect")
    parser.add_argument("--wait", type=float, default=0.5,
                        help="at the end of stdin, close once the server was quiet this long")
    args = parser.parse_args(argv)

    headers: list[tuple[str, str]] = []
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            parser.exit(2, "wsocket connect: error: --header must look like 'Name: value'\n")
        headers.append((name.strip(), value.strip()))
    proxy = True if args.proxy is None else None if args.proxy.lower() == "none" else args.proxy
    context = None
    if args.insecure or args.cafile:
        context = ssl.create_default_context(cafile=args.cafile)
        if args.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    try:
        websocket = connect(args.url, args.protocols, headers, args.origin,
                            not args.no_compression, open_timeout=args.timeout,
                            ssl_context=context, proxy=proxy)
    except (ValueError, OSError) as error:
        parser.exit(1, "wsocket connect: error: %s\n" % error)
    shown = urlsplit(args.url)._replace(netloc=urlsplit(args.url).netloc.rpartition("@")[2])
    print("connected to %s%s" % (shown.geturl(), " (subprotocol %s)" % websocket.protocol
                                  if websocket.protocol else ""), file=sys.stderr, flush=True)
    printer = _Printer(websocket)
    printer.start()
    try:
        for line in sys.stdin:
            websocket.send(line.rstrip("\r\n"))
        while not websocket.closed and time.monotonic() - printer.last_message < args.wait:
            time.sleep(0.05)
    except (KeyboardInterrupt, ConnectionClosed):
        pass
    websocket.close()
    printer.join(timeout=websocket.close_timeout)
    print("closed (code %s%s)" % (websocket.close_code, ", " + websocket.close_reason
                                  if websocket.close_reason else ""), file=sys.stderr)
    return 0


class _Printer(threading.Thread):
    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(daemon=True)
        self.websocket = websocket
        self.last_message = time.monotonic()

    def run(self) -> None:
        for message in self.websocket:
            self.last_message = time.monotonic()
            print(message if isinstance(message, str) else "<binary %d bytes> %s"
                  % (len(message), message[:64].hex()), flush=True)


if __name__ == "__main__":
    sys.exit(main())
