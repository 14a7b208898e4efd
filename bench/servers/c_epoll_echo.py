"""The ceiling: ``loadgen --serve``, a single-threaded C epoll echo server.

bench/loadgen.c's server mode (built with the machine's cc into
bench/.build/, like the load generator): non-blocking sockets on one epoll
loop, RFC 6455 framing (unmasks, sends each frame back unmasked with its
opcode and FIN bit, answers pings and closes) and nothing else: no UTF-8
checks, no limits, no extensions. What a message costs when only the
kernel's sockets cost anything; a Python server can approach it, not pass it.

This launcher builds (or finds) the executable and replaces itself with it,
so the process the bench pins, measures and stops is the C server itself.
"""

import os
import sys

from bench.servers import arguments


def main() -> None:
    options = arguments()
    from bench import runner
    executable = runner.build_loadgen(quiet=True)
    if executable is None:
        sys.exit("c-epoll-echo: bench/loadgen.c cannot be built (no C compiler, cc)")
    command = [str(executable), "--serve", "--port", str(options.port)]
    if options.broadcast:
        command.append("--broadcast")
    sys.stdout.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
