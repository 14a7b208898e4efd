"""``python -m bench.reliability``: the figures of the Reliability page (docs/reliability.md).

    python -m bench.reliability                       # 2,000 connections, 10,000 cycles
    python -m bench.reliability --connections 5000 --cycles 20000
    python -m bench.reliability --connections 10000 --close-runs 20   # + closing all at once

Runs wsocket's own server as a subprocess (``python -m wsocket
tests.apps:echo`` on 127.0.0.1) and measures, with raw-socket clients on one
selector (the machinery of tests/test_reliability.py, in tests/loadkit.py):

- connections held at once, each with a checked echo, and the server's
  memory (RSS) per connection; the same with the event app, whose idle
  connections hold no thread (``tests.apps:events_echo``);
- connect/echo/close cycles, and the server's threads and memory after them;
- how long a dead peer holds a thread: a killed client process, a TCP reset,
  a peer that stops reading and answering (ping_interval and ping_timeout
  0.5 s here), a peer that stops reading while the server sends to it;
- how long a normal client takes to connect and echo during a slowloris
  attack of 500 connections;
- with ``--close-runs N``: N times, a new server holding ``--connections``
  WebSockets (a thread each), whose clients all send their close frame at
  the same moment: in how many runs every closing handshake was answered
  within ``--close-within`` seconds (10).

Prints Markdown on stdout, progress on stderr. Linux only (``/proc``).
"""

import argparse
import os
import platform
import sys
import time

from tests import loadkit


def progress(text):
    print(text, file=sys.stderr, flush=True)


def normal_client_seconds(port):
    started = time.monotonic()
    client = loadkit.BlockingClient(port)
    assert client.echo("normal") == (loadkit.TEXT, b"normal")
    assert client.close() == 1000
    return time.monotonic() - started


def close_at_once(count, runs, within):
    """``runs`` times: ``count`` WebSockets of tests.apps:echo, all closed by their clients at once."""
    good = 0
    slowest = 0.0
    unanswered = []
    for run in range(runs):
        held = loadkit.hold_connections(count, close_concurrency=count, close_timeout=within)
        answered = held["closed_cleanly"]
        missing = held["held"] - answered
        if held["held"] == count and missing == 0:
            good += 1
            slowest = max(slowest, held["close_seconds"])
        else:
            unanswered.append(missing)
        progress("close run %d of %d: %d held (opened in %.1f s), %d closing handshakes "
                 "answered in %.1f s" % (run + 1, runs, held["held"], held["open_seconds"],
                                         answered, held["close_seconds"]))
    result = "%d of %d runs" % (good, runs)
    if good:
        result += " (the slowest of those took %.1f s)" % slowest
    if unanswered:
        result += "; the others left %s unanswered" % ", ".join(map(str, unanswered))
    return [("%d thread-per-connection WebSockets closed at once: closing handshakes all "
             "answered within %g s" % (count, within), result)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--cycles", type=int, default=10000)
    parser.add_argument("--slowloris", type=int, default=500)
    parser.add_argument("--close-runs", type=int, default=0,
                        help="runs of closing every connection at once (default: none)")
    parser.add_argument("--close-within", type=float, default=10.0,
                        help="seconds the closing handshakes have to be answered (10)")
    args = parser.parse_args(argv)
    rows = []

    progress("holding %d connections..." % args.connections)
    held = loadkit.hold_connections(args.connections)
    failures = len(held["lost"]) + len(held["wrong"])
    rows.append(("connections held at once, each echoing", "%d of %d (%d lost or wrong), "
                 "opened in %.1f s" % (held["held"], args.connections, failures,
                                       held["open_seconds"])))
    rows.append(("server threads while holding them", "%d (1 + one per connection)"
                 % held["held_threads"]))
    rows.append(("server memory per connection (RSS)", "%.1f KiB (%.3f MB)"
                 % (held["kib_per_connection"], held["kib_per_connection"] / 1024)))
    rows.append(("closing handshakes completed", "%d, threads back to %d in %.1f s"
                 % (held["closed_cleanly"], held["threads_after"], held["settle_seconds"])))

    progress("holding %d connections of the event app..." % args.connections)
    held = loadkit.hold_connections(args.connections, app="tests.apps:events_echo",
                                    idle_threads=2)
    failures = len(held["lost"]) + len(held["wrong"])
    rows.append(("event app (tests.apps:events_echo): connections held, each echoing",
                 "%d of %d (%d lost or wrong), opened in %.1f s"
                 % (held["held"], args.connections, failures, held["open_seconds"])))
    rows.append(("event app: server threads while holding them",
                 "%d (main, the reactor's loop, and workers not yet ended after a hand-over)"
                 % held["held_threads"]))
    rows.append(("event app: server memory per connection (RSS)", "%.1f KiB"
                 % held["kib_per_connection"]))
    rows.append(("event app: closing handshakes completed", "%d in %.1f s, threads back to %d "
                 "in %.1f s (idle workers end after 5 s)"
                 % (held["closed_cleanly"], held["close_seconds"], held["threads_after"],
                    held["settle_seconds"])))

    progress("%d connect/echo/close cycles..." % args.cycles)
    cycles = loadkit.connect_cycles(args.cycles)
    rows.append(("connect/echo/close cycles (8 clients at a time)", "%d in %.1f s, %d errors"
                 % (args.cycles, cycles["seconds"], len(cycles["errors"]))))
    rows.append(("server after them", "threads %d -> %d, memory %+.1f MB"
                 % (cycles["base_threads"], cycles["threads_after"],
                    cycles["rss_growth_kib"] / 1024)))

    progress("dead peers (ping_interval 0.5 s, ping_timeout 0.5 s)...")
    with loadkit.ServerProcess("tests.apps:echo", "--ping-interval", "0.5",
                               "--ping-timeout", "0.5") as server:
        loadkit.BlockingClient(server.port).close()
        base = server.settle_threads(1, 10)
        threads, seconds = loadkit.dead_peer_killed(server, base)
        rows.append(("killed client process (SIGKILL): thread freed after",
                     "%.0f ms (threads back to %d)" % (seconds * 1000, threads)))
        threads, seconds = loadkit.dead_peer_reset(server, base)
        rows.append(("TCP reset: thread freed after", "%.0f ms (threads back to %d)"
                     % (seconds * 1000, threads)))
        threads, detected, freed, frames = loadkit.dead_peer_silent(server, base)
        rows.append(("peer that stops reading and answering: found dead after",
                     "%.2f s (ping after 0.5 s, no pong for 0.5 s); thread freed after %.2f s "
                     "(threads back to %d)" % (detected, freed, threads)))
        threads, seconds, sent = loadkit.dead_peer_not_reading(server, base)
        rows.append(("peer that stops reading while the server sends: thread freed",
                     "%.2f s after its buffers filled (%.1f MB sent; threads back to %d)"
                     % (seconds, sent / 1e6, threads)))

    progress("slowloris (%d connections)..." % args.slowloris)
    loadkit.raise_nofile(args.slowloris + 1024)
    with loadkit.ServerProcess("tests.apps:echo", nofile=args.slowloris + 1024) as server:
        normal_client_seconds(server.port)
        slow = loadkit.Slowloris(server.port, args.slowloris)
        try:
            slow.pump(1.0)
            seconds = normal_client_seconds(server.port)
            open_ones = slow.still_open()
        finally:
            slow.close()
    rows.append(("normal client (connect, echo, close) during a slowloris attack",
                 "%.0f ms, with %d slow connections open (default limits)"
                 % (seconds * 1000, open_ones)))

    if args.close_runs:
        rows.extend(close_at_once(args.connections, args.close_runs, args.close_within))

    print("Machine: %s, %d CPUs (shared), Python %s\n" % (
        platform.platform(), os.cpu_count(), platform.python_version()))
    print("| measured | result |")
    print("| --- | --- |")
    for name, value in rows:
        print("| %s | %s |" % (name, value))
    return 0


if __name__ == "__main__":
    sys.exit(main())
