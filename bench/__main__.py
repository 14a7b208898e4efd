"""``python -m bench``: wsocket against its peers, under the same load generator.

    python -m bench                      # every scenario, every server, 3 repetitions
    python -m bench --quick              # shorter runs, 2 repetitions (a few minutes)
    python -m bench --scenarios echo-1,pipe-1 --servers wsocket,minimal --repeat 5

Each repetition runs every server for each scenario in turn (A B C A B C ...),
a fresh server process per run; the table shows medians. The load generator
is loadgen.c built with the machine's cc (or loadgen.py without one); its
check (is it fast enough not to be what is measured?) is printed first.
Prints Markdown on stdout, progress on stderr, and writes
bench/results/latest.json and latest.md.

This is a benchmark, not a test: nothing here passes or fails on timing.
"""

import argparse
import datetime
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time

from bench import runner
from bench.scenarios import BY_NAME, SCENARIOS, deflated_payload
from bench.servers import C_CEILING, PEER, REFERENCES, SERVERS, missing

RESULTS = runner.BENCH / "results"
# Scenarios whose generator ceiling is measured against the C echo server.
CHECK_SCENARIOS = ["echo-1", "echo-128", "pipe-1", "pipe-16", "mib-1"]
# wsocket's two ways of serving, each divided by every reference in the ratio table.
OURS = ["wsocket", "wsocket-events"]
LABELS = {C_CEILING: "C ceiling"}


def progress(text):
    print(text, file=sys.stderr, flush=True)


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", help="comma-separated, from: %s (default: all)"
                        % ", ".join(s.name for s in SCENARIOS))
    parser.add_argument("--servers", help="comma-separated, from: %s (default: all)"
                        % ", ".join(SERVERS))
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 5; quick 2)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds first (default 1; quick 0.5)")
    parser.add_argument("--repeat", type=int, help="interleaved repetitions (default 3; quick 2)")
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer repetitions")
    parser.add_argument("--loadgen", choices=["auto", "c", "python"], default="auto",
                        help="the C load generator (built with cc) or the pure Python one")
    parser.add_argument("--no-check", action="store_true",
                        help="skip measuring the load generator against the C echo server")
    parser.add_argument("--output", default=str(RESULTS / "latest.json"),
                        help="results JSON (a .md beside it gets the report)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration if args.duration is not None else (2.0 if quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if quick else 1.0)
    args.repeat = args.repeat if args.repeat is not None else (2 if quick else 3)
    if args.duration <= 0 or args.warmup < 0 or args.repeat < 1:
        parser.error("--duration must be positive, --warmup not negative, --repeat at least 1")

    def pick(text, known, what):
        if not text:
            return list(known)
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in known]
        if unknown:
            parser.error("unknown %s %s (known: %s)" % (what, ", ".join(unknown), ", ".join(known)))
        return names

    args.scenarios = pick(args.scenarios, [s.name for s in SCENARIOS], "scenario")
    args.servers = pick(args.servers, list(SERVERS), "server")
    return args


# -- aggregation ----------------------------------------------------------------------------

FIELDS = ["msg_per_s", "mb_per_s", "p50_us", "p99_us", "connected", "held", "echo_ok",
          "kb_per_conn", "server_cpu_util", "server_us_per_msg", "cpu_util", "connect_s",
          "server_us_per_conn", "server_fds"]


def usable(run, scenario):
    if "failed" in run:
        return False
    if scenario.idle:
        return bool(run.get("held"))
    return not run.get("error")


def summarize(runs, scenario):
    """Medians over the usable runs of one server in one scenario."""
    good = [run for run in runs if usable(run, scenario)]
    summary = {"runs": len(runs), "usable": len(good)}
    if not good:
        errors = [run.get("failed") or run.get("error") for run in runs]
        summary["error"] = errors[0] if errors else "not run"
        return summary
    for name in FIELDS:
        values = [run[name] for run in good if run.get(name) is not None]
        if values:
            summary[name] = statistics.median(values)
    summary["deflate"] = all(run.get("deflate") for run in good)
    errors = [run.get("error") for run in good if run.get("error")]
    if errors:
        summary["note"] = errors[0]
    return summary


def ratio(ours, theirs, scenario, metric=None):
    metric = metric or scenario.metric
    if not ours or not theirs or ours.get(metric) in (None, 0) or theirs.get(metric) in (None, 0):
        return None
    if scenario.deflate and not (ours.get("deflate") and theirs.get("deflate")):
        return None
    return ours[metric] / theirs[metric]


# -- formatting --------------------------------------------------------------------------------

def number(value, digits=0):
    if value is None:
        return ""
    if digits == 0:
        return "{:,.0f}".format(value)
    return "{:,.{}f}".format(value, digits)


def ms(us):
    if us is None or us < 0:
        return ""
    return number(us / 1000.0, 2 if us < 10000 else 1)


def results_table(summaries, scenarios, servers, not_installed):
    lines = ["| scenario | server | msg/s | p50 ms | p99 ms | MB/s | server CPU µs/msg "
             "| conns held | KB/conn | wsocket ÷ peer | CPU/msg: wsocket ÷ peer |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    blank = " | |" * 8
    for scenario in scenarios:
        ours = summaries.get((scenario.name, "wsocket"))
        first = True
        for server in servers:
            label = "**%s**" % scenario.name if first else ""
            first = False
            if server in not_installed:
                lines.append("| %s | %s | not installed (%s)%s"
                             % (label, server, ", ".join(not_installed[server]), blank))
                continue
            summary = summaries.get((scenario.name, server))
            if summary is None:
                continue
            if "error" in summary:
                lines.append("| %s | %s | failed: %s%s"
                             % (label, server, summary["error"][:120].replace("|", "/"), blank))
                continue
            name = server
            if scenario.deflate and not summary.get("deflate"):
                name += " (declined deflate)"
            if summary.get("note"):
                name += " ⚠"
            conns = number(summary.get("connected"))
            if scenario.idle:
                conns = "%s (%s ok)" % (number(summary.get("held")), number(summary.get("echo_ok")))
                if scenario.metric == "connect_s":
                    conns += " in %s s" % number(summary.get("connect_s"), 2)
            # open-5000: the CPU column holds the server's CPU per connection opened
            cpu_field = "server_us_per_conn" if scenario.metric == "connect_s" \
                else "server_us_per_msg"
            cpu = summary.get(cpu_field)
            cpu_text = number(cpu, 0 if (cpu or 0) >= 100 else 1)
            if cpu_field == "server_us_per_conn" and cpu_text:
                cpu_text += " per conn"
            if server == "wsocket":
                versus = cpu_versus = "—"
            else:
                value = ratio(ours, summary, scenario)
                versus = "%.2f" % value if value is not None else ""
                if versus and scenario.metric == "kb_per_conn":
                    versus += " (memory)"
                elif versus and scenario.metric == "connect_s":
                    versus += " (open time)"
                value = ratio(ours, summary, scenario, cpu_field)
                cpu_versus = "%.2f" % value if value is not None else ""
            mb = summary.get("mb_per_s")
            show_mb = scenario.metric == "mb_per_s" or scenario.size >= 1024
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, name, number(summary.get("msg_per_s")), ms(summary.get("p50_us")),
                ms(summary.get("p99_us")),
                number(mb, 1 if (mb or 0) < 100 else 0) if show_mb else "",
                cpu_text, conns, number(summary.get("kb_per_conn"), 1), versus, cpu_versus))
    return lines


def ratio_pairs(servers):
    """(ours, reference) column pairs of the ratio table, among the servers that ran."""
    pairs = [(ours, reference) for reference in REFERENCES for ours in OURS
             if ours in servers and reference in servers]
    if PEER in servers and C_CEILING in servers:
        pairs.append((PEER, C_CEILING))  # how near the fastest Python peer gets
    return pairs


def ratios(summaries, scenarios, servers):
    """Every ratio of the ratio table: one dict per scenario and pair (None: no figure)."""
    found = []
    for scenario in scenarios:
        for ours, reference in ratio_pairs(servers):
            mine = summaries.get((scenario.name, ours))
            theirs = summaries.get((scenario.name, reference))
            # The CPU time per message too: steadier than msg/s on a busy machine
            # (below 1, the first spends less).
            found.append({"scenario": scenario.name, "server": ours, "reference": reference,
                          "metric": scenario.metric, "ratio": ratio(mine, theirs, scenario),
                          "cpu_per_msg_ratio": ratio(
                              mine, theirs, scenario, "server_us_per_conn"
                              if scenario.metric == "connect_s" else "server_us_per_msg")})
    return found


def ratio_table(found, scenarios, servers):
    """wsocket and wsocket-events as multiples of picows, minimal and the C ceiling."""
    pairs = ratio_pairs(servers)
    if not pairs:
        return []
    by_key = {(entry["scenario"], entry["server"], entry["reference"]): entry["ratio"]
              for entry in found}
    lines = ["| scenario | " + " | ".join("%s ÷ %s" % (ours, LABELS.get(reference, reference))
                                         for ours, reference in pairs) + " |",
             "| --- |" + " ---: |" * len(pairs)]
    for scenario in scenarios:
        cells = []
        for ours, reference in pairs:
            value = by_key.get((scenario.name, ours, reference))
            cells.append("%.2f" % value if value is not None else "")
        lines.append("| %s | %s |" % (scenario.name, " | ".join(cells)))
    return lines


def check_table(check, summaries, scenarios, generator):
    """Is the load generator what sets the pace? Its ceiling and its CPU use."""
    lines = ["| scenario | generator alone, vs the C echo server: msg/s (generator CPU) "
             "| fastest Python server | its msg/s | generator CPU | server CPU "
             "| generator headroom |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    verdicts = []
    for scenario in scenarios:
        if scenario.idle:
            continue
        candidates = [(summary.get("msg_per_s") or 0, server, summary)
                      for (name, server), summary in summaries.items()
                      if name == scenario.name and "error" not in summary
                      and server != C_CEILING
                      and (summary.get("deflate") or not scenario.deflate)]
        if not candidates:
            continue
        best_rate, best_server, best = max(candidates, key=lambda item: item[0])
        ceiling = check.get(scenario.name)
        alone = ""
        if ceiling and not ceiling.get("error"):
            alone = "%s (%.0f%%)" % (number(ceiling["msg_per_s"]), 100 * ceiling["cpu_util"])
        elif ceiling:
            alone = "failed: %s" % ceiling["error"][:60]
        generator_cpu = best.get("cpu_util")
        server_cpu = best.get("server_cpu_util")
        # The generator's CPU per message, measured in that very run: how many
        # times the rate it could sustain if it never had to wait.
        headroom = "%.1f×" % (1 / generator_cpu) if generator_cpu else ""
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            scenario.name, alone, best_server, number(best_rate),
            "%.0f%%" % (100 * generator_cpu) if generator_cpu is not None else "?",
            "%.0f%%" % (100 * server_cpu) if server_cpu is not None else "?", headroom))
        if generator_cpu is not None and generator_cpu > 0.7:
            verdicts.append("%s: the generator used %.0f%% of its CPU against %s: it may be "
                            "what sets the pace there" % (scenario.name, 100 * generator_cpu,
                                                          best_server))
    if not verdicts:
        verdicts.append("The %s load generator is not the bottleneck: against the fastest "
                        "Python server of each scenario it stayed well under its CPU "
                        "(headroom: 1 ÷ its CPU share, the rate it could sustain if it never "
                        "waited, as a multiple of that server's rate)%s." % (generator, (
                            "; alone, against the C echo server (loadgen.c --serve, "
                            "the c-epoll-echo column), it "
                            "drives the pipelined scenarios several times faster than any "
                            "Python server") if check else ""))
    return lines, verdicts


# -- the runs ------------------------------------------------------------------------------------

def run_check(executable, cpus, args):
    """The generator against the C echo server: what it can do when the server costs ~nothing."""
    check = {}
    options = {"duration": min(args.duration, 2.0), "warmup": min(args.warmup, 0.5)}
    for name in CHECK_SCENARIOS:
        if name not in args.scenarios:
            continue
        scenario = BY_NAME[name]
        try:
            result = runner.run_one(C_CEILING, scenario, options, executable, cpus)
            check[name] = {"msg_per_s": result["msg_per_s"], "mb_per_s": result["mb_per_s"],
                           "cpu_util": result["cpu_util"],
                           "server_cpu_util": result["server_cpu_util"],
                           "error": result["error"]}
        except runner.RunError as error:
            check[name] = {"error": str(error)}
        entry = check[name]
        if entry.get("error"):
            progress("  check %-9s %s: failed: %s" % (name, C_CEILING, entry["error"]))
        else:
            progress("  check %-9s %s: %12s msg/s  generator CPU %3.0f%%"
                     % (name, C_CEILING, number(entry["msg_per_s"]), 100 * entry["cpu_util"]))
    return check


def describe(run, scenario):
    if "failed" in run:
        return "FAILED: " + run["failed"]
    if scenario.idle:
        text = "held %s, %s ok, %s KB/conn, opened in %s s (server %s us/conn)" % (
            run.get("held"), run.get("echo_ok"), number(run.get("kb_per_conn"), 1),
            number(run.get("connect_s"), 2), number(run.get("server_us_per_conn")))
    else:
        text = "%12s msg/s  p50 %s ms  MB/s %s  server %s us/msg" % (
            number(run["msg_per_s"]), ms(run["p50_us"]), number(run["mb_per_s"], 1),
            number(run.get("server_us_per_msg"), 1))
    if scenario.idle:
        # What counts there is the opening: each side's CPU share while it lasted.
        text += "  (opening: server CPU %.0f%%, generator %.0f%%)" % (
            100 * (run.get("opening_server_cpu_util") or 0),
            100 * (run.get("opening_cpu_util") or 0))
    else:
        text += "  (server CPU %.0f%%, generator %.0f%%)" % (
            100 * (run.get("server_cpu_util") or 0), 100 * (run.get("cpu_util") or 0))
    if run.get("error"):
        text += "  ! " + run["error"][:150]
    return text


def git_revision():
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=str(runner.ROOT),
                                  capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=str(runner.ROOT),
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return revision + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def versions():
    from importlib import metadata
    found = {}
    for name in ("wsocket", "websockets", "flask-sock", "simple-websocket", "flask", "werkzeug",
                 "picows", "uvloop", "aiofastnet"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def main(argv=None):
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)

    def terminate(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    try:
        return _main(args, command.strip())
    except KeyboardInterrupt:
        progress("bench: interrupted")
        return 130
    finally:
        runner.stop_all()


def _main(args, command):
    try:
        importlib.import_module("wsocket")
    except ImportError:
        progress("bench: wsocket is not importable: pip install -e . first")
        return 2
    open_files = runner.raise_nofile()
    cpus = runner.choose_cpus()
    if cpus[0] is not None:
        os.sched_setaffinity(0, {cpus[0]})  # this process stays off the server's CPU
        progress("bench: load generator on CPU %d, servers on CPU %d" % cpus)
    else:
        progress("bench: fewer than 2 CPUs: generator and server share the CPU (no pinning)")
    scenarios = [BY_NAME[name] for name in args.scenarios]
    if any(s.idle for s in scenarios) and open_files < max(s.connections for s in scenarios) + 100:
        progress("bench: only %d open files allowed (ulimit -n): the idle scenario will hold "
                 "fewer connections" % open_files)

    executable = None
    if args.loadgen in ("auto", "c"):
        executable = runner.build_loadgen()
        if executable is None and args.loadgen == "c":
            progress("bench: --loadgen c, but loadgen.c cannot be built")
            return 2
    generator = "C" if executable is not None else "pure Python"
    progress("bench: %s load generator; %s s measured (+%s s warm-up) per run, %d repetitions"
             % (generator, args.duration, args.warmup, args.repeat))

    not_installed = {name: missing(name) for name in args.servers if missing(name)}
    servers = [name for name in args.servers if name not in not_installed]
    for name, modules in not_installed.items():
        progress("bench: %s: not installed (%s)" % (name, ", ".join(modules)))

    runnable, skipped = [], []
    for scenario in scenarios:
        reason = scenario.unavailable()
        if reason:
            skipped.append((scenario, reason))
            progress("bench: %s: skipped: %s" % (scenario.name, reason))
        else:
            runnable.append(scenario)

    deflate_files = {}
    for scenario in runnable:
        if scenario.deflate:
            runner.BUILD.mkdir(parents=True, exist_ok=True)
            path = runner.BUILD / ("deflate-%s-%d.bin" % (scenario.kind, scenario.size))
            path.write_bytes(deflated_payload(scenario.size, scenario.kind))
            deflate_files[scenario.name] = path

    started = time.time()
    check = {}
    if executable is not None and not args.no_check:
        progress("bench: generator check against the C echo server")
        check = run_check(executable, cpus, args)

    options = {"duration": args.duration, "warmup": args.warmup}
    runs = {}
    for repetition in range(1, args.repeat + 1):
        for scenario in runnable:
            for server in servers:
                try:
                    run = runner.run_one(server, scenario, options, executable, cpus,
                                         deflate_files.get(scenario.name))
                except runner.RunError as error:
                    run = {"failed": str(error)}
                run["repetition"] = repetition
                runs.setdefault((scenario.name, server), []).append(run)
                progress("[%d/%d] %-9s %-18s %s" % (repetition, args.repeat, scenario.name, server,
                                                    describe(run, scenario)))

    summaries = {key: summarize(value, BY_NAME[key[0]]) for key, value in runs.items()}
    found = ratios(summaries, runnable, servers)
    report = render(args, command, generator, check, summaries, found, runnable, skipped,
                    servers, not_installed, time.time() - started)
    print(report)

    if not runs:
        progress("bench: nothing was run: %s left as it was" % os.path.relpath(args.output))
        return 0
    output = os.path.abspath(args.output)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    data = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command, "machine": runner.machine(), "versions": versions(),
        "wsocket_revision": git_revision(), "generator": generator,
        "cpus": {"generator": cpus[0], "server": cpus[1]},
        "options": {"duration": args.duration, "warmup": args.warmup, "repeat": args.repeat},
        "generator_check": check,
        "not_installed": not_installed,
        "skipped": {scenario.name: reason for scenario, reason in skipped},
        "summary": [dict(scenario=key[0], server=key[1], **value)
                    for key, value in summaries.items()],
        "ratios": found,
        "runs": [dict(scenario=key[0], server=key[1], **run)
                 for key, value in runs.items() for run in value],
    }
    with open(output, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    with open(os.path.splitext(output)[0] + ".md", "w") as f:
        f.write(report + "\n")
    progress("bench: results in %s (and .md)" % os.path.relpath(output))
    return 0


def render(args, command, generator, check, summaries, found, scenarios, skipped, servers,
           not_installed, seconds):
    info = runner.machine()
    lines = [
        "`%s` — %s, %s CPUs (%s), Python %s, wsocket %s; %s load generator on one CPU, "
        "the server on another; medians of %d interleaved runs of %s s (after %s s warm-up); "
        "took %.0f s." % (command, datetime.date.today().isoformat(), info["cpus"],
                          info["cpu_model"] or "unknown CPU", info["python"],
                          git_revision() or "?", generator, args.repeat, args.duration,
                          args.warmup, seconds),
        "",
        "Peers' versions: %s." % (", ".join("%s %s" % item for item in versions().items()
                                             if item[0] != "wsocket") or "none installed"),
        "",
    ]
    if generator != "C" or check:
        check_lines, verdicts = check_table(check, summaries, scenarios, generator)
        lines += ["Load generator check:", ""] + check_lines + [""] + verdicts + [""]
    lines += results_table(summaries, scenarios, servers, not_installed)
    lines.append("")
    table = ratio_table(found, scenarios, servers)
    if table:
        lines += ["Against the references, from the same runs (the scenario's figure, msg/s "
                  "unless said below; above 1, the first does more; for KB per connection "
                  "and for opening time, below 1 is better):", "", *table, ""]
    for scenario in scenarios:
        lines.append("- %s: %s%s" % (scenario.name, scenario.title,
                                     "; ratio of KB per connection (lower is leaner)"
                                     if scenario.metric == "kb_per_conn" else
                                     "; ratio of the seconds to open them all (lower is faster)"
                                     if scenario.metric == "connect_s" else
                                     "; ratio of MB/s" if scenario.metric == "mb_per_s" else ""))
    for scenario, reason in skipped:
        lines.append("- %s: %s: skipped, %s" % (scenario.name, scenario.title, reason))
    lines.append("")
    lines.append("wsocket ÷ peer: wsocket's figure divided by the peer's (msg/s unless said): "
                 "above 1, wsocket does more. CPU/msg: the server's CPU time per message over "
                 "the measured window, steadier than msg/s on a busy machine; wsocket ÷ peer "
                 "below 1, wsocket spends less. ⚠: some runs had errors (see the JSON). "
                 "picows: picows on uvloop, the fastest Python peer; C ceiling "
                 "(c-epoll-echo): loadgen.c --serve, a single-threaded C epoll echo that "
                 "checks nothing.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
