"""How ``--workers`` scales: the event app with 1 worker process against 2, same run.

    python -m bench.workers                 # echo with 16 and 128 connections, pipelined 16
    python -m bench.workers --repeat 5 --duration 5

Unlike ``python -m bench`` nothing is pinned to a CPU: the supervisor's
workers and the load generator share the machine's cores, as they would in
production with clients elsewhere. On a 2-core machine the load generator
takes a good part of one core, so 2 workers cannot double the figure; the
ratio says what a second process buys on the same cores. Runs are
interleaved (1, 2, 1, 2, ...) so that the machine's drift hits both alike.
"""

import argparse
import statistics
import sys

from bench import runner
from bench.scenarios import SCENARIOS

SCENARIO_NAMES = ("echo-16", "echo-128", "pipe-16")


def measure(workers, scenario, options, executable):
    name = "wsocket-workers-%d" % workers
    original = runner.server_command

    def command(server, loadgen_executable=None):
        if server == name:
            return [sys.executable, "-m", "bench.servers.wsocket_workers_echo", "--port", "0",
                    "--workers", str(workers)]
        return original(server, loadgen_executable)

    runner.server_command = command
    try:
        return runner.run_one(name, scenario, options, executable, (None, None))
    finally:
        runner.server_command = original


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    runner.raise_nofile()
    executable = runner.build_loadgen()
    options = {"duration": args.duration, "warmup": args.warmup}
    scenarios = [scenario for scenario in SCENARIOS if scenario.name in SCENARIO_NAMES]
    results = {}
    try:
        for _ in range(args.repeat):
            for scenario in scenarios:
                for workers in (1, 2):
                    record = measure(workers, scenario, options, executable)
                    if record.get("error"):
                        print("bench: %s, %d workers: %s" % (scenario.name, workers,
                                                            record["error"]), file=sys.stderr)
                        continue
                    results.setdefault((scenario.name, workers), []).append(
                        record["msg_per_s"])
    finally:
        runner.stop_all()
    print("| scenario | 1 worker, msg/s | 2 workers, msg/s | 2 ÷ 1 |")
    print("| --- | ---: | ---: | ---: |")
    for scenario in scenarios:
        one = results.get((scenario.name, 1))
        two = results.get((scenario.name, 2))
        if not one or not two:
            print("| %s | failed | | |" % scenario.title)
            continue
        one_median, two_median = statistics.median(one), statistics.median(two)
        print("| %s | %s | %s | %.2f |" % (scenario.title, format(round(one_median), ","),
                                           format(round(two_median), ","),
                                           two_median / one_median))
    print("\nmedians of %d interleaved runs of %.0f s each; %d CPUs; Python %s"
          % (args.repeat, args.duration, runner.machine()["cpus"], sys.version.split()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
