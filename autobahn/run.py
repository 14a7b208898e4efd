#!/usr/bin/env python3
"""Run the Autobahn Testsuite (fuzzingclient mode) against a WebSocket server.

    python autobahn/run.py --url ws://127.0.0.1:9001 [--cases '1.*,2.*']
                           [--exclude '12.*,13.*'] [--report-dir DIR]

wstest connects to the server at --url as a client, runs the selected cases
and writes an HTML/JSON report.  This script prints a summary of it and exits
0 if every case passed, 1 if any case failed, 2 if the run itself broke.

wstest must first be installed with autobahn/install.sh (a Python 2.7 venv,
.autobahn/venv in the checkout unless AUTOBAHN_VENV says otherwise).

From Python (e.g. a pytest test):

    from run import run_fuzzingclient, bad_cases
    results = run_fuzzingclient("ws://127.0.0.1:9001", ["1.*"])
    assert not bad_cases(results)
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

AGENT = "wsocket"
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("AUTOBAHN_VENV", os.path.join(CHECKOUT, ".autobahn", "venv"))
# Written by install.sh when no Python 2.7 can be had: why wstest is missing.
UNAVAILABLE = os.path.join(CHECKOUT, ".autobahn", "unavailable.txt")

# Verdicts that count as passing.  NON-STRICT and INFORMATIONAL are the
# suite's own "acceptable" grades; UNIMPLEMENTED (e.g. groups 12/13 without
# permessage-deflate) is flagged so it is excluded on purpose, not by accident.
BAD_BEHAVIORS = {"FAILED", "UNIMPLEMENTED"}
GOOD_CLOSE = {"OK", "INFORMATIONAL"}


def run_fuzzingclient(url, cases=("*",), exclude=(), report_dir=None,
                      timeout=3600, agent=AGENT):
    """Run wstest against `url`; return {case_id: (behavior, behaviorClose)}.

    `cases` / `exclude` are lists of case ids or patterns such as "9.*".
    Raises RuntimeError if wstest fails, times out or cannot connect.
    """
    report_dir = os.path.abspath(report_dir or tempfile.mkdtemp(prefix="autobahn-"))
    os.makedirs(report_dir, exist_ok=True)
    index_path = os.path.join(report_dir, "index.json")
    if os.path.exists(index_path):
        os.remove(index_path)  # never read a previous run's results

    spec = {
        "outdir": report_dir,
        # fuzzingclient takes a list of servers; "agent" names it in reports.
        "servers": [{"agent": agent, "url": url}],
        "cases": list(cases),
        "exclude-cases": list(exclude),
        "exclude-agent-cases": {},
        # Already wstest's default in this mode; spelled out because a strict
        # True would fail cases where the server drops TCP after closing.
        "options": {"failByDrop": False},
    }
    spec_path = os.path.join(report_dir, "fuzzingclient.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=2)

    wstest = os.path.join(VENV, "bin", "wstest")
    if not os.path.exists(wstest):
        raise RuntimeError(f"{wstest} not found: run autobahn/install.sh first")
    # Silence cryptography's "Python 2 is no longer supported" warning.
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    log_path = os.path.join(report_dir, "wstest.log")
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(
                [wstest, "-m", "fuzzingclient", "-s", spec_path],
                cwd=report_dir, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"wstest timed out after {timeout}s, see {log_path}")
    with open(log_path) as f:
        output = f.read()
    if proc.returncode != 0:  # e.g. an unknown exact case id -> KeyError
        raise RuntimeError(f"wstest exited {proc.returncode}:\n{output[-2000:]}")
    # On a refused/failed connection wstest silently skips all remaining
    # cases and still exits 0, so look for its message.
    for line in output.splitlines():
        if line.startswith("Connection to ") and " failed " in line:
            raise RuntimeError(f"wstest: {line}")
    if not os.path.exists(index_path):
        raise RuntimeError(f"wstest wrote no {index_path}, see {log_path}")
    with open(index_path) as f:
        index = json.load(f)
    results = index.get(agent, {})
    return {case: (r["behavior"], r["behaviorClose"]) for case, r in results.items()}


def case_key(case_id):
    """Sort "9.10.1" after "9.2.1"."""
    return tuple(int(part) for part in case_id.split("."))


def bad_cases(results):
    """Case ids whose result counts as a failure, in suite order."""
    return sorted((case for case, (behavior, close) in results.items()
                   if behavior in BAD_BEHAVIORS or close not in GOOD_CLOSE),
                  key=case_key)


def print_summary(results, out=sys.stdout):
    print(f"{len(results)} cases run", file=out)
    for i, title in enumerate(("behavior", "behaviorClose")):
        counts = collections.Counter(r[i] for r in results.values())
        print(f"{title}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
              file=out)
    bad = bad_cases(results)
    for case in bad:
        behavior, close = results[case]
        print(f"  BAD {case}: behavior={behavior} behaviorClose={close}", file=out)
    print(f"{len(bad)} bad cases", file=out)
    return bad


def split_list(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT of the server under test")
    parser.add_argument("--cases", default="*", help="comma-separated ids/patterns (default: all)")
    parser.add_argument("--exclude", default="", help="comma-separated ids/patterns to skip")
    parser.add_argument("--report-dir", help="where spec, log and reports go (default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for the whole run")
    parser.add_argument("--agent", default=AGENT, help="server name used in the reports")
    args = parser.parse_args(argv)

    report_dir = os.path.abspath(args.report_dir or tempfile.mkdtemp(prefix="autobahn-"))
    try:
        results = run_fuzzingclient(args.url, split_list(args.cases), split_list(args.exclude),
                                    report_dir, args.timeout, args.agent)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bad = print_summary(results)
    print(f"report: {os.path.join(report_dir, 'index.html')}")
    if not results:
        print("error: no case was run", file=sys.stderr)
        return 2
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
