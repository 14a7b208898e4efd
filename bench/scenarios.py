"""What the benchmark measures: one entry per scenario, in table order.

Each scenario is a load generator command line (see loadgen.c) and the
figure that its ``wsocket ÷ peer`` ratio is taken from. Scenarios that
cannot run yet say why (``unavailable``) and are listed as skipped.
"""

import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

MIB = 1 << 20


@dataclass
class Scenario:
    name: str
    title: str
    connections: int = 1
    depth: int = 1            # messages in flight per connection
    size: int = 32            # payload bytes
    kind: str = "text"        # text, binary or json (text)
    deflate: bool = False     # offer permessage-deflate
    idle: bool = False        # open, hold, then one echo each
    metric: str = "msg_per_s"  # what the ratio compares
    higher_is_better: bool = True
    servers: Optional[list] = None    # None: every server
    unavailable: Callable[[], Optional[str]] = field(default=lambda: None)

    def loadgen_args(self):
        args = ["--connections", str(self.connections), "--depth", str(self.depth),
                "--size", str(self.size), "--kind", self.kind]
        if self.idle:
            args.append("--idle")
        return args


def broadcast_unavailable():
    """Broadcast is timed by ``python -m bench.broadcast``, not by the load generator.

    What counts there is the time from one client's send until the last of
    N clients has the message, which loadgen does not measure; that command
    runs the same servers (bench/servers with ``--broadcast``) for it.
    """
    return ("measured by python -m bench.broadcast (time for one message to reach every "
            "client, against the same peers; see docs/performance.md)")


SCENARIOS = [
    Scenario("echo-1", "echo 32 B text, 1 connection"),
    Scenario("echo-16", "echo 32 B text, 16 connections", connections=16),
    Scenario("echo-128", "echo 32 B text, 128 connections", connections=128),
    Scenario("pipe-1", "pipelined echo, 64 in flight, 1 connection", depth=64),
    Scenario("pipe-16", "pipelined echo, 64 in flight, 16 connections", connections=16, depth=64),
    Scenario("mib-1", "echo 1 MiB binary, 1 connection", size=MIB, kind="binary",
             metric="mb_per_s"),
    Scenario("idle-10000", "10,000 idle connections held, then one echo each (msg/s, p50, p99:"
             " of that round; answers within 30 s count as ok)",
             connections=10000, idle=True, metric="kb_per_conn", higher_is_better=False),
    # The load generator's --idle run: the time to open them all is connect_s.
    Scenario("open-5000", "open 5,000 WebSockets, 64 handshakes under way at a time (TCP "
             "connect + opening handshake; the time until all are open, then held and one "
             "echo each as in idle-10000)", connections=5000, idle=True, metric="connect_s",
             higher_is_better=False),
    Scenario("deflate-1", "echo 1 KiB JSON text, permessage-deflate, 1 connection",
             size=1024, kind="json", deflate=True),
    # One message in flight measures a round trip, whose fixed part (the load
    # generator, waking each side) bounds every server alike; 16 in flight
    # measure what the server's compression costs.
    Scenario("deflate-pipe", "echo 1 KiB JSON text, permessage-deflate, 16 in flight, "
             "1 connection", depth=16, size=1024, kind="json", deflate=True),
    Scenario("broadcast", "broadcast to 100 connections (hub)", connections=100,
             unavailable=broadcast_unavailable),
]

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def deflated_payload(size, kind):
    """The payload loadgen sends, raw-deflated as one permessage-deflate message.

    The client offers client_no_context_takeover, so every message it sends
    compresses on its own and the same bytes can go out each time.
    """
    from bench.loadgen import make_payload
    compressor = zlib.compressobj(wbits=-15)
    data = compressor.compress(make_payload(size, kind)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]
