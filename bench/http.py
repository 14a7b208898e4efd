"""``python -m bench.http``: plain HTTP on wsocket's server, gunicorn (gthread) and werkzeug.

    python -m bench.http                      # every app, 1 and 16 connections, 5 s each
    python -m bench.http --duration 10 --servers wsocket,gunicorn-gthread

Each server serves bench/http_apps.py on one CPU (the first), with its
access log off; wrk (Debian's ``wrk``) loads it from the other CPU over
keep-alive connections, each server in turn, ``--repeat`` times: ``hello``
(a 12-byte body with Content-Length) on 1 and 16 connections, ``page``
(64 KiB with Content-Length) and ``page_streamed`` (the same 64 KiB in 16
pieces, chunked) on 16. Prints a Markdown table of the medians of
requests/s and of median latency, and each server's requests/s as a ratio
to gunicorn's in the same run. A benchmark, not a test: on a busy machine
read the ratios, not the figures. Every process started here is stopped on
the way out.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "gunicorn-gthread"

# {app} is the attribute of bench.http_apps, {port} the port.
SERVERS = {
    "wsocket": [sys.executable, "-m", "wsocket", "bench.http_apps:{app}", "--port", "{port}",
                "--log-level", "warning"],
    "gunicorn-gthread": [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "32",
                         "-w", "1", "-b", "127.0.0.1:{port}", "--log-level", "warning",
                         "bench.http_apps:{app}"],
    "werkzeug-threaded": [sys.executable, "-c",
                          "import logging, sys; logging.getLogger('werkzeug').setLevel("
                          "logging.WARNING); from werkzeug.serving import run_simple; "
                          "from bench import http_apps; run_simple('127.0.0.1', int(sys.argv[2]), "
                          "getattr(http_apps, sys.argv[1]), threaded=True)", "{app}", "{port}"],
}
# (app, connections)
SCENARIOS = [("hello", 1), ("hello", 16), ("page", 16), ("page_streamed", 16)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpus():
    """(server CPU, load CPU): two different ones when there are two."""
    available = sorted(os.sched_getaffinity(0))
    return available[0], available[-1]


def start(name: str, app: str, cpu: int):
    port = free_port()
    command = [part.replace("{app}", app).replace("{port}", str(port))
               for part in SERVERS[name]]

    def setup():
        os.setsid()
        os.sched_setaffinity(0, {cpu})
    process = subprocess.Popen(command, cwd=str(ROOT), preexec_fn=setup,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError("%s exited with %s" % (name, process.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                stop(process)
                raise RuntimeError("%s did not listen within 30 s" % name)
            time.sleep(0.05)


def stop(process) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        except ProcessLookupError:
            pass


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(port: int, connections: int, duration: float, cpu: int):
    """(requests/s, median latency in ms, errors) from one wrk run."""
    command = ["wrk", "--latency", "-t1", "-c%d" % connections, "-d%ds" % duration,
               "http://127.0.0.1:%d/" % port]
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60,
                            preexec_fn=lambda: os.sched_setaffinity(0, {cpu})).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    latency = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\b", output, re.MULTILINE)
    errors = re.search(r"Socket errors: (.*)|Non-2xx or 3xx responses: (\d+)", output)
    if rate is None or latency is None:
        raise RuntimeError("wrk said:\n" + output)
    return (float(rate.group(1)), float(latency.group(1)) * _UNITS[latency.group(2)],
            errors.group(0) if errors else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per run (default 5)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each server, interleaved; the table shows medians "
                             "(default 3)")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="comma-separated, of: %s" % ", ".join(SERVERS))
    args = parser.parse_args(argv)
    names = args.servers.split(",")
    server_cpu, load_cpu = cpus()
    runs = {}
    for app, connections in SCENARIOS:
        for repetition in range(args.repeat):
            for name in names:  # interleaved: a slow moment of the machine hits all alike
                print("%s: %s on %d connection(s), run %d..." % (name, app, connections,
                                                                repetition + 1),
                      file=sys.stderr, flush=True)
                process, port = start(name, app, server_cpu)
                try:
                    wrk(port, connections, 1, load_cpu)  # warm up
                    runs.setdefault((name, app, connections), []).append(
                        wrk(port, connections, args.duration, load_cpu))
                finally:
                    stop(process)
    results = {key: (statistics.median(run[0] for run in values),
                     statistics.median(run[1] for run in values),
                     "; ".join(run[2] for run in values if run[2]))
               for key, values in runs.items()}
    print("| app | connections | server | requests/s | median latency | vs %s | errors |"
          % REFERENCE)
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for app, connections in SCENARIOS:
        reference = results.get((REFERENCE, app, connections))
        for name in names:
            rate, latency, errors = results[name, app, connections]
            ratio = "%.2f" % (rate / reference[0]) if reference else "-"
            print("| %s | %d | %s | %.0f | %.3f ms | %s | %s |" % (
                app, connections, name, rate, latency, ratio, errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
