"""Processes: building the load generator, starting servers, one measured run.

Servers run on one CPU, the load generator on another (when there are
two), each in its own process group, bound to 127.0.0.1; every wait has a
deadline and every process started here is killed on the way out.
"""

import hashlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.servers import SERVERS, c_compiler

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = BENCH / ".build"
LOGS = BUILD / "logs"

READY_TIMEOUT = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class RunError(Exception):
    """One run failed (server did not start, generator timed out...): noted, not fatal."""


# -- the process registry: everything started here dies with us ---------------------

_live = []


def _spawn(command, cpu, **kwargs):
    def setup():
        os.setsid()  # own process group: killed as a whole
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
    process = subprocess.Popen(command, cwd=str(ROOT), preexec_fn=setup, **kwargs)
    _live.append(process)
    return process


def stop(process, timeout=5.0):
    """SIGTERM to the process group, SIGKILL after ``timeout``."""
    if process.poll() is None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    else:  # the leader is gone; anything left in its group goes too
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream:
            try:
                stream.close()
            except OSError:
                pass
    if process in _live:
        _live.remove(process)


def stop_all():
    for process in list(_live):
        stop(process, timeout=2.0)


# -- the machine ---------------------------------------------------------------------

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def choose_cpus():
    """(generator CPU, server CPU), or (None, None) with fewer than two CPUs to use."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    if len(usable) < 2:
        return None, None
    return usable[0], usable[1]


def machine():
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": sys.version.split()[0],
            "platform": sys.platform}


def _tree(pid):
    """pid and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir("/proc/%d/task" % current):
                with open("/proc/%d/task/%s/children" % (current, task)) as f:
                    todo.extend(int(child) for child in f.read().split())
        except OSError:
            pass
    return pids


def _over_tree(pid, measure):
    """The sum of ``measure(pid)`` over the process and its children (gone ones count 0)."""
    total = 0
    for each in _tree(pid):
        try:
            total += measure(each)
        except (OSError, IndexError, ValueError):
            pass  # it ended meanwhile
    return total


def _vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def rss_kb(pid):
    """Resident memory of the process and its children, in KiB (VmRSS)."""
    return _over_tree(pid, _vm_rss_kb)


def open_files(pid):
    """File descriptors the process and its children have open."""
    return _over_tree(pid, lambda each: len(os.listdir("/proc/%d/fd" % each)))


def cpu_seconds(pid):
    """User + system CPU time of the process (all threads) and its children."""
    return _over_tree(pid, _cpu_ticks) / CLOCK_TICKS


# -- the load generator ---------------------------------------------------------------

def build_loadgen(quiet=False):
    """Compile loadgen.c with the machine's cc (cached); None when that is not possible."""
    compiler = c_compiler()
    source = BENCH / "loadgen.c"
    if compiler is None:
        if not quiet:
            print("bench: no C compiler (cc): using the pure Python load generator",
                  file=sys.stderr)
        return None
    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:12]
    executable = BUILD / ("loadgen-" + digest)
    if executable.exists():
        return executable
    BUILD.mkdir(parents=True, exist_ok=True)
    temporary = executable.with_suffix(".tmp%d" % os.getpid())
    command = [compiler, "-O2", "-o", str(temporary), str(source)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        print("bench: building loadgen.c failed (%s): using the pure Python load generator"
              % error, file=sys.stderr)
        return None
    if result.returncode != 0:
        print("bench: %s failed, using the pure Python load generator:\n%s"
              % (" ".join(command), result.stderr.strip()[-2000:]), file=sys.stderr)
        temporary.unlink(missing_ok=True)
        return None
    temporary.replace(executable)
    return executable


def loadgen_command(executable):
    if executable is None:
        return [sys.executable, "-m", "bench.loadgen"]
    return [str(executable)]


def _read_line(process, deadline, what):
    """One line of the process's stdout, before ``deadline`` (time.monotonic())."""
    stream = process.stdout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RunError("%s: no answer in time" % what)
        ready, _, _ = select.select([stream], [], [], min(remaining, 0.5))
        if ready:
            line = stream.readline()
            if not line:
                raise RunError("%s exited (status %s)" % (what, process.wait(5)))
            return line.decode("utf-8", "replace").strip()
        if process.poll() is not None:
            raise RunError("%s exited (status %s)" % (what, process.returncode))


def _log_tail(path, lines=5):
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


# -- servers ----------------------------------------------------------------------------

def server_command(name, loadgen_executable=None):
    module = SERVERS[name][0]
    return [sys.executable, "-m", "bench.servers." + module, "--port", "0"]


def start_server(name, cpu, log_path, loadgen_executable=None, extra_arguments=()):
    """Start server ``name``; returns (process, port) once it accepts connections.

    ``extra_arguments`` go after the launcher's own (``--broadcast``, say).
    """
    log = open(log_path, "wb")
    try:
        command = server_command(name, loadgen_executable) + list(extra_arguments)
        process = _spawn(command, cpu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=log)
    finally:
        log.close()
    try:
        line = _read_line(process, time.monotonic() + READY_TIMEOUT, "server %s" % name)
        if not line.startswith("READY "):
            raise RunError("server %s said %r instead of READY" % (name, line))
        return process, int(line.split()[1])
    except BaseException as error:
        stop(process)
        if isinstance(error, RunError):
            raise RunError("%s (log: %s)" % (error, _log_tail(log_path)))
        raise


# -- one run ------------------------------------------------------------------------------

def run_one(server, scenario, options, loadgen_executable, cpus, deflate_file=None):
    """Start ``server``, drive it through ``scenario``, stop it: the measurements, as a dict.

    ``options``: duration, warmup. Raises RunError when the run could not
    be done at all; a run that ran with errors returns them in ``error``.
    """
    generator_cpu, server_cpu = cpus
    LOGS.mkdir(parents=True, exist_ok=True)
    server_log = LOGS / ("%s.%s.server.log" % (scenario.name, server))
    generator_log = LOGS / ("%s.%s.loadgen.log" % (scenario.name, server))
    process, port = start_server(server, server_cpu, server_log, loadgen_executable)
    generator = None
    try:
        command = loadgen_command(loadgen_executable) + [
            "--port", str(port), "--duration", str(options["duration"]),
            "--warmup", str(options["warmup"])] + scenario.loadgen_args()
        if deflate_file is not None:
            command += ["--deflate", str(deflate_file)]
        if scenario.idle:
            command += ["--timeout", "120"]
        else:
            command += ["--timeout", "30"]
        rss_before = rss_kb(process.pid)
        cpu_before = cpu_seconds(process.pid)
        started = time.monotonic()
        with open(generator_log, "wb") as log:
            generator = _spawn(command, generator_cpu, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=log)
        record = {"rss_before_kb": rss_before}
        if scenario.idle:
            line = _read_line(generator, started + 150, "load generator")
            connected = json.loads(line)
            # The server's CPU time for opening them (steadier than the seconds
            # it took on a busy machine), per connection.
            opening_cpu = cpu_seconds(process.pid) - cpu_before
            record["server_us_per_conn"] = (
                1e6 * opening_cpu / connected["connected"] if connected["connected"] else None)
            # Each side's share of a CPU while the connections opened (the
            # utilisation figures below are of the one echo each, later).
            opening_s = connected["seconds"]
            record["opening_server_cpu_util"] = opening_cpu / opening_s if opening_s > 0 else None
            record["opening_cpu_util"] = connected["cpu_s"] / opening_s if opening_s > 0 else None
            time.sleep(1.0)  # let the server finish setting up the last connections
            record["rss_after_kb"] = rss_kb(process.pid)
            record["server_fds"] = open_files(process.pid)
            record["connect_s"] = connected["seconds"]
            held = connected["connected"]
            if process.poll() is not None:
                raise RunError("server %s died holding connections (log: %s)"
                               % (server, _log_tail(server_log)))
            record["held"] = held
            record["kb_per_conn"] = ((record["rss_after_kb"] - rss_before) / held
                                     if held else None)
            generator.stdin.write(b"go\n")
            generator.stdin.flush()
            line = _read_line(generator, time.monotonic() + 150, "load generator")
        else:
            # The server's CPU time is sampled when the generator says the
            # measured window starts and ends.
            deadline = started + options["warmup"] + options["duration"] + 90
            marks = {}
            while True:
                line = _read_line(generator, deadline, "load generator")
                event = json.loads(line).get("event")
                if event is None:
                    break
                marks[event] = (time.monotonic(), cpu_seconds(process.pid))
            if "measuring" in marks and "measured" in marks:
                started, cpu_before = marks["measuring"]
                ended, cpu_after = marks["measured"]
        if scenario.idle or "measured" not in marks:
            ended, cpu_after = time.monotonic(), cpu_seconds(process.pid)
        wall = ended - started
        cpu_used = cpu_after - cpu_before
        result = json.loads(line)
        generator.wait(15)
    except (ValueError, KeyError) as error:
        raise RunError("load generator output not understood: %s (log: %s)"
                       % (error, _log_tail(generator_log)))
    finally:
        if generator is not None:
            stop(generator)
        stop(process)
    record.update(result)
    record["server_cpu_util"] = cpu_used / wall if wall > 0 else None
    if not scenario.idle and result.get("messages"):
        # Server CPU per message: steadier than msg/s when others share the machine.
        record["server_us_per_msg"] = 1e6 * cpu_used / result["messages"]
    if scenario.idle:
        record["echo_ok"] = result["messages"]
    if result.get("errors") or result.get("connected", 0) < scenario.connections:
        detail = result.get("error") or "%d of %d connections" % (
            result.get("connected", 0), scenario.connections)
        tail = _log_tail(server_log, 2)
        record["error"] = detail + ((" (server log: %s)" % tail) if tail else "")
    else:
        record["error"] = ""
    return record
