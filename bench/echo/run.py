#!/usr/bin/env python3
"""The echo benchmark runner (bench/echo/README.md).

Runs every available echo server of the SERVERS table against the C load
generator (echo_client), interleaved: in each round every configuration is
run against every server in turn (epoll, libuv, cio_sock, ..., epoll,
libuv, ...), so that a slow moment of the machine hits all of them alike.
The server is pinned to CPU 1 and the client to CPU 0 (taskset).

Prints one "<name> <value> <unit>" line per figure (medians over the
rounds), the ratios to the epoll server, and '#' comments; the same output,
plus one '#raw' line per run, goes to a results file under bench/results/.

    bench/echo/run.py [--build DIR] [--rounds R] [--configs 64x64,512x4096]
                      [--servers epoll,cio_sock] [--idle 10000,100000:epoll+libuv]
                      [--quick] [--out FILE]

It builds nothing: configure with -DCIO_BUILD_BENCH=ON (Release) and build
the echo_* targets first (scripts/bench.sh does both).
"""
import argparse
import math
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# name -> command; {bin} is the build's bench directory, {python} the Debian
# python3, {here} this directory, {ports} the comma-separated port list. A
# server whose program is missing (not built, no libuv, no uvloop) is
# reported as skipped. Adding a server is one line here (C servers named
# server_cio_*.c are built by bench/CMakeLists.txt without further edits).
SERVERS = [
    ("epoll", ["{bin}/echo_server_epoll", "{ports}"]),
    ("libuv", ["{bin}/echo_server_libuv", "{ports}"]),
    # The same program with glibc's heap trimming off: the canonical echo
    # mallocs and frees a 64 KiB buffer per read, and glibc hands the top of
    # the heap back to the kernel each time, so every message page-faults
    # (README). This line shows what libuv's loop costs without that.
    ("libuv_notrim", ["env", "GLIBC_TUNABLES=glibc.malloc.trim_threshold=67108864",
                      "{bin}/echo_server_libuv", "{ports}"]),
    # libuv as one writes it for speed (server_libuv_tuned.c): one reused
    # read buffer and uv_try_write, so the allocator drops out; the libuv
    # figure cio is compared with.
    ("libuv_tuned", ["{bin}/echo_server_libuv_tuned", "{ports}"]),
    # The hand-written io_uring reference (server_uring.c): multishot accept
    # and recv into a buffer ring, sends through the ring.
    ("uring", ["{bin}/echo_server_uring", "{ports}"]),
    # cio's servers on each backend, in the same run: <name> on epoll,
    # <name>_uring on io_uring (CIO_BACKEND).
    ("cio_sock", ["env", "CIO_BACKEND=epoll", "{bin}/echo_server_cio_sock", "{ports}"]),
    ("cio_sock_uring", ["env", "CIO_BACKEND=uring", "{bin}/echo_server_cio_sock", "{ports}"]),
    ("cio_protocol", ["env", "CIO_BACKEND=epoll", "{bin}/echo_server_cio_protocol", "{ports}"]),
    ("cio_protocol_uring", ["env", "CIO_BACKEND=uring", "{bin}/echo_server_cio_protocol",
                            "{ports}"]),
    ("cio_stream", ["env", "CIO_BACKEND=epoll", "{bin}/echo_server_cio_stream", "{ports}"]),
    ("cio_stream_uring", ["env", "CIO_BACKEND=uring", "{bin}/echo_server_cio_stream", "{ports}"]),
    ("asyncio", ["{python}", "{here}/server_asyncio.py", "{ports}"]),
    ("uvloop", ["{python}", "{here}/server_uvloop.py", "{ports}"]),
]
BASELINE = "epoll"

FULL_CONFIGS = "1x64,64x64,512x64,1x4096,64x4096,512x4096"
# Idle-connection runs: count[:server+server...]; without a server list,
# every available server. The defaults are the brief's targets: 10,000 on
# every server, 100,000 on the ones meant to hold that many.
FULL_IDLE = "10000,100000:epoll+libuv+libuv_notrim+libuv_tuned+cio_protocol"


def log(f, line):
    print(line, flush=True)
    if f:
        f.write(line + "\n")
        f.flush()


def free_ports(n):
    """n distinct ports the kernel considers free right now."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def pin(cpu):
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def python_for_servers():
    if os.environ.get("CIO_BENCH_PYTHON"):
        return os.environ["CIO_BENCH_PYTHON"]
    # Debian's python3 has python3-uvloop; a pyenv python on PATH does not.
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def server_available(name, argv, python):
    """None if the server can run, else why not."""
    prog = next(a for a in argv if a != "env" and "=" not in a)
    if prog == python:
        if not os.path.exists(python):
            return "no python3"
        if name == "uvloop":
            r = subprocess.run([python, "-c", "import uvloop"], capture_output=True)
            if r.returncode != 0:
                return "no uvloop for %s (python3-uvloop)" % python
        return None
    if not os.access(prog, os.X_OK):
        return "%s not built" % os.path.basename(prog)
    # cio's servers on io_uring need a cio built with liburing, which is
    # exactly when the hand-written io_uring server is built too.
    if name.endswith("_uring") and name != "uring":
        ring_ref = os.path.join(os.path.dirname(prog), "echo_server_uring")
        if not os.access(ring_ref, os.X_OK):
            return "cio built without io_uring (no echo_server_uring)"
    return None


class Server:
    def __init__(self, argv, cpu, nports):
        self.ports = free_ports(nports)
        ports = ",".join(map(str, self.ports))
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(pin(cpu) + [a.replace("{ports}", ports) for a in argv],
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        self.pid = self.proc.pid  # taskset and env exec the server: same pid
        deadline = time.time() + 15
        pending = list(self.ports)
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with status %d: %s" % (
                    self.proc.returncode, self.stderr()))
            try:
                socket.create_connection(("127.0.0.1", pending[0]), timeout=1).close()
                pending.pop(0)
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError("server never listened")
                time.sleep(0.02)
        time.sleep(0.05)  # let it close the probe connections

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace").strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def parse_figures(text):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def run_client(args, client_argv, timeout):
    r = subprocess.run(pin(args.client_cpu) + client_argv, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("client failed: %s" % r.stderr.strip())
    return parse_figures(r.stdout), r.stdout


def perf_usable():
    """perf stat counting raw_syscalls:sys_enter, with --control, works here."""
    if not shutil.which("perf"):
        return "no perf (linux-perf)"
    r = subprocess.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0 or "raw_syscalls" not in r.stderr or "not supported" in r.stderr:
        return "perf cannot count raw_syscalls:sys_enter here (root and tracefs needed)"
    return None


def count_syscalls(args, srv, client_base):
    """System calls of the server per message, from a separate short run
    under perf stat -e raw_syscalls:sys_enter. The counters start disabled
    (--delay=-1) and the client enables them over its measured window only
    (--control fifo), so warm-up and connection set-up do not count, and
    the timed run is never slowed by tracing."""
    tmp = tempfile.mkdtemp(prefix="cio-echo-perf-")
    ctl, ack, out = (os.path.join(tmp, n) for n in ("ctl", "ack", "out"))
    os.mkfifo(ctl)
    os.mkfifo(ack)
    # perf opens the ack FIFO for writing without blocking: it needs a
    # reader already, which this keeps (the client reads the acks).
    keep = os.open(ack, os.O_RDONLY | os.O_NONBLOCK)
    events = "raw_syscalls:sys_enter"
    if args.count_enters:
        events += ",syscalls:sys_enter_io_uring_enter"
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", events, "-p",
                             str(srv.pid), "--delay=-1", "--control",
                             "fifo:%s,%s" % (ctl, ack), "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.2)  # perf attaches to every thread of the server
        figs, _ = run_client(args, client_base + ["-w", str(args.warmup / 2), "-d",
                                                  str(args.syscall_duration), "-C",
                                                  "%s,%s" % (ctl, ack)], 120)
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait()
        os.close(keep)
    count = None
    enters = None
    with open(out) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) > 2 and fields[2] in ("raw_syscalls:sys_enter",
                                                 "syscalls:sys_enter_io_uring_enter"):
                try:
                    v = float(fields[0])
                except ValueError:
                    continue
                if fields[2] == "raw_syscalls:sys_enter":
                    count = v
                else:
                    enters = v
    shutil.rmtree(tmp, ignore_errors=True)
    if count is None or not figs.get("messages"):
        return None, None
    return count / figs["messages"], (None if enters is None else
                                      enters * 1000.0 / figs["messages"])


def load_run(args, name, argv, conns, size):
    srv = Server(argv, args.server_cpu, 1)
    try:
        base = [args.client, "-p", str(srv.ports[0]), "-c", str(conns), "-s", str(size),
                "-P", str(srv.pid)]
        figs, _ = run_client(args, base + ["-w", str(args.warmup), "-d", str(args.duration)],
                             args.duration * 10 + 60)
        if args.perf_ok:
            figs["syscalls_per_msg"], enters = count_syscalls(args, srv, base)
            if enters is not None and "uring" in name:
                figs["enters_per_1000_msgs"] = enters
    finally:
        srv.stop()
    return figs


def idle_run(args, name, argv, n):
    # At most 25,000 connections per listening port; the client spreads
    # them over source addresses 127.0.0.2... so that no (source, port)
    # pair needs more than 20,000 of loopback's 28,000 ephemeral ports.
    srv = Server(argv, args.server_cpu, min(8, 1 + n // 25000))
    try:
        figs, _ = run_client(args, [args.client, "-i", str(n), "-p",
                                    ",".join(map(str, srv.ports)), "-P", str(srv.pid), "-H",
                                    str(args.hold)], 600)
    finally:
        srv.stop()
    return figs


def nofile_limit(want):
    """Raises RLIMIT_NOFILE (inherited by the server and the client) to
    want if allowed; returns the limit the children will have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for lim in ((max(want, soft), max(want, hard)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, lim)
            return lim[0]
        except (ValueError, OSError):
            pass
    return soft


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v):
    if v == int(v) and abs(v) >= 100:
        return "%d" % v
    return "%.3f" % v if abs(v) < 1000 else "%.1f" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"),
                    help="build directory holding bench/echo_* (default build-bench)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--configs", default=FULL_CONFIGS, help="CONNSxBYTES,... (default %(default)s)")
    ap.add_argument("--servers", default="", help="comma-separated subset of the table")
    ap.add_argument("--idle", default=FULL_IDLE,
                    help="idle runs: N[:srv+srv],...; 'none' for none (default %(default)s)")
    ap.add_argument("--idle-rounds", type=int, default=None, help="default: --rounds")
    ap.add_argument("--duration", type=float, default=2.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--syscall-duration", type=float, default=0.5,
                    help="seconds of the separate run under perf; 0 skips it")
    ap.add_argument("--hold", type=float, default=0.5,
                    help="idle runs: seconds to wait before each RSS reading")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run (seconds): 1 round, 1x64 and 64x4096, 200 idle conns")
    ap.add_argument("--out", default=None, help="results file (default bench/results/echo-<time>.txt)")
    args = ap.parse_args()

    if args.quick or os.environ.get("CIO_BENCH_QUICK") == "1":
        args.rounds, args.configs, args.idle = 1, "1x64,64x4096", "200"
        args.duration, args.warmup, args.syscall_duration, args.hold = 0.3, 0.1, 0.2, 0.1
    if args.idle_rounds is None:
        args.idle_rounds = args.rounds
    configs = []
    for c in args.configs.split(","):
        n, s = c.lower().split("x")
        configs.append((int(n), int(s)))
    idle = []
    if args.idle != "none":
        for spec in args.idle.split(","):
            n, _, who = spec.partition(":")
            idle.append((int(n), who.split("+") if who else None))
    # The client and the server each hold one descriptor per idle
    # connection; past the hard limit only a process with CAP_SYS_RESOURCE
    # (root on a plain VM, not in every container) can go.
    nofile = nofile_limit(max([n for n, _ in idle] + [0]) + 1000)
    too_many = [(n, who) for n, who in idle if n + 200 > nofile]
    idle = [(n, who) for n, who in idle if n + 200 <= nofile]

    bindir = os.path.join(os.path.abspath(args.build), "bench")
    args.client = os.path.join(bindir, "echo_client")
    if not os.access(args.client, os.X_OK):
        sys.exit("run.py: %s is missing; configure with -DCIO_BUILD_BENCH=ON and build "
                 "(scripts/bench.sh)" % args.client)
    cpus = os.cpu_count() or 1
    pinned = os.environ.get("CIO_BENCH_CPU") != "none" and shutil.which("taskset") and cpus >= 2
    args.server_cpu, args.client_cpu = (1, 0) if pinned else (None, None)
    python = python_for_servers()

    if args.out is None:
        os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
        args.out = os.path.join(ROOT, "bench", "results",
                                time.strftime("echo-%Y%m%d-%H%M%S.txt", time.gmtime()))
    out = open(args.out, "w")

    def rev():
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True)
        return r.stdout.strip() or "unknown"

    def dpkg(p):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True,
                           text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    log(out, "# cio echo benchmark, %s" % time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    log(out, "# commit %s; kernel %s; %s, %d CPUs" % (rev(), os.uname().release, model, cpus))
    log(out, "# %s" % ("server pinned to CPU 1, client to CPU 0" if pinned else "not pinned"))
    log(out, "# rounds %d, configs %s, %.1f s measured after %.1f s warm-up, idle %s" %
        (args.rounds, args.configs, args.duration, args.warmup, args.idle))
    for p in ("libuv1-dev", "python3", "python3-uvloop", "linux-perf"):
        v = dpkg(p)
        if v:
            log(out, "# %s %s" % (p, v))

    wanted = set(args.servers.split(",")) if args.servers else None
    servers = []
    for name, argv in SERVERS:
        if wanted is not None and name not in wanted:
            continue
        argv = [a.replace("{bin}", bindir).replace("{python}", python).replace("{here}", HERE)
                for a in argv]
        why = server_available(name, argv, python)
        if why:
            log(out, "# skipped %s: %s" % (name, why))
        else:
            servers.append((name, argv))
    for n, _ in too_many:
        log(out, "# skipped idle %d: RLIMIT_NOFILE is %d here and cannot be raised "
            "(needs root with CAP_SYS_RESOURCE)" % (n, nofile))
    args.perf_ok = False
    if args.syscall_duration > 0:
        why = perf_usable()
        if why:
            log(out, "# skipped syscalls_per_msg: %s" % why)
        else:
            args.perf_ok = True
    # io_uring_enter calls per 1,000 messages: counted by the same perf run
    # (the tracepoint syscalls:sys_enter_io_uring_enter), for the io_uring
    # servers only.
    args.count_enters = False
    if args.perf_ok:
        r = subprocess.run(["perf", "stat", "-x,", "-e", "syscalls:sys_enter_io_uring_enter",
                            "true"], capture_output=True, text=True)
        args.count_enters = r.returncode == 0 and "not supported" not in r.stderr
        if not args.count_enters:
            log(out, "# skipped enters_per_1000_msgs: perf has no syscalls:sys_enter_io_uring_enter")

    # results[(server, conns, size)] = list of per-round figure dicts.
    results = {}
    idle_results = {}
    failed = set()
    for rnd in range(1, max(args.rounds, args.idle_rounds) + 1):
        if rnd <= args.rounds:
            for conns, size in configs:
                for name, argv in servers:
                    key = (name, conns, size)
                    if key in failed:
                        continue
                    try:
                        figs = load_run(args, name, argv, conns, size)
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        log(out, "# FAILED %s c%d s%d round %d: %s" % (name, conns, size, rnd, e))
                        failed.add(key)
                        continue
                    results.setdefault(key, []).append(figs)
                    log(out, "#raw round=%d server=%s conns=%d size=%d %s" % (
                        rnd, name, conns, size,
                        " ".join("%s=%s" % (k, fmt(v)) for k, v in sorted(figs.items())
                                 if v is not None)))
        if rnd <= args.idle_rounds:
            for n, who in idle:
                for name, argv in servers:
                    if who is not None and name not in who:
                        continue
                    key = (name, n)
                    if key in failed:
                        continue
                    try:
                        figs = idle_run(args, name, argv, n)
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        log(out, "# FAILED idle %s n%d round %d: %s" % (name, n, rnd, e))
                        failed.add(key)
                        continue
                    idle_results.setdefault(key, []).append(figs)
                    log(out, "#raw round=%d server=%s idle=%d %s" % (
                        rnd, name, n, " ".join("%s=%s" % (k, fmt(v))
                                               for k, v in sorted(figs.items()))))

    # Medians over the rounds; ratios to the epoll server are the median of
    # the per-round ratios (each round's runs were taken moments apart).
    metrics = [("msgs_per_sec", "msg/s"), ("cpu_us_per_msg", "us"), ("p50_us", "us"),
               ("p99_us", "us"), ("syscalls_per_msg", "syscalls/msg"),
               ("enters_per_1000_msgs", "enters/kmsg")]
    source = {"cpu_us_per_msg": "server_cpu_us_per_msg"}
    for conns, size in configs:
        for name, _ in servers:
            runs = results.get((name, conns, size))
            if not runs:
                continue
            stem = "echo_%s_c%d_s%d" % (name, conns, size)
            for m, unit in metrics:
                v = median([r.get(source.get(m, m)) for r in runs])
                if v is not None:
                    log(out, "%s_%s %s %s" % (stem, m, fmt(v), unit))
        base = results.get((BASELINE, conns, size))
        if not base:
            continue
        for name, _ in servers:
            runs = results.get((name, conns, size))
            if name == BASELINE or not runs:
                continue
            stem = "echo_%s_c%d_s%d" % (name, conns, size)
            for m, label in (("msgs_per_sec", "msgs"), ("server_cpu_us_per_msg", "cpu")):
                ratios = [r[m] / b[m] for r, b in zip(runs, base)
                          if r.get(m) and b.get(m)]
                if ratios:
                    log(out, "%s_%s_over_%s %.3f x" % (stem, label, BASELINE,
                                                       statistics.median(ratios)))
    # io_uring against epoll for the same cio server (issue 9's "Done
    # means"): the median of the per-round ratios of the runs taken moments
    # apart, and each checked against its goal.
    names = [n for n, _ in servers]
    gates = [("cpu", "server_cpu_us_per_msg", {64: 1.0, 512: 0.90}, "<="),
             ("msgs", "msgs_per_sec", {64: 0.97, 512: 1.0}, ">="),
             ("p99", "p99_us", {64: 1.1, 512: 1.1}, "<=")]
    for conns, size in configs:
        for name in names:
            if not name.endswith("_uring") or name[:-len("_uring")] not in names:
                continue
            base_name = name[:-len("_uring")]
            pairs = [("%s_over_%s" % (name, base_name), results.get((name, conns, size)),
                      results.get((base_name, conns, size)), True)]
            if "uring" in names:
                pairs.append(("%s_over_uring" % name, results.get((name, conns, size)),
                              results.get(("uring", conns, size)), False))
            for stem, runs, base, is_backend in pairs:
                if not runs or not base:
                    continue
                for label, m, goals, op in gates:
                    if not is_backend and label != "msgs":
                        continue
                    ratios = [r[m] / b[m] for r, b in zip(runs, base) if r.get(m) and b.get(m)]
                    if not ratios:
                        continue
                    v = statistics.median(ratios)
                    log(out, "echo_c%d_s%d_%s_%s %.3f x" % (conns, size, stem, label, v))
                    goal = goals.get(conns) if is_backend else (0.9 if conns == 512 else None)
                    if goal is not None and size == 64:
                        ok = v <= goal if op == "<=" else v >= goal
                        log(out, "# goal %s %s at %dx%d B %s %.2fx: %s (%.3fx)" % (
                            stem, label, conns, size, op, goal, "met" if ok else "MISSED", v))
    for n, _ in idle:
        for name, _ in servers:
            runs = idle_results.get((name, n))
            if not runs:
                continue
            stem = "echo_idle_%s_n%d" % (name, n)
            for m in ("idle_bytes_per_conn", "idle_bytes_left_per_conn"):
                v = median([r.get(m) for r in runs])
                if v is not None:
                    log(out, "%s_%s %s B" % (stem, m[len("idle_"):], fmt(v)))
            v = median([r.get("idle_connect_seconds") for r in runs])
            if v is not None:
                log(out, "%s_connect_seconds %s s" % (stem, fmt(v)))
    for name, n, limit in (("cio_protocol", 100000, 0.4 * 1024), ("cio_stream", 10000, 4.5 * 1024)):
        v = median([r.get("idle_bytes_per_conn") for r in idle_results.get((name, n), [])])
        if v is not None:
            log(out, "# goal %s at %d idle connections <= %.0f B each: %s (%.0f B)" % (
                name, n, limit, "met" if v <= limit else "MISSED", v))
    log(out, "# results file: %s" % os.path.relpath(args.out, ROOT)
        if args.out.startswith(ROOT) else "# results file: %s" % args.out)
    out.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
