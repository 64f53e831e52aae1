#!/usr/bin/env python3
"""tools/cio-gdb.py on a core file and on a live process (issue 12, test 6
of debuggability.md section 7.9).

    gdb_test.py MODE TARGET SCRIPT

TARGET is tests/gdb_target.c built with -O0 -g -fno-omit-frame-pointer:
seven named tasks, each blocked in a function of its own. MODE:

  core   'cio gcore' on the running target, then gdb on the core file
         (no process left): every task's name, wait and own function in
         'cio tasks' and 'cio bt all'; 'cio task ID' then 'info frame',
         'bt' and 'up' work in the task; 'cio graph' nests the child.
  live   the same commands through 'gdb -p': afterwards the target still
         runs, reports the same states and switch counts as before, and
         finishes normally (exit 0) when told to.
  abort  the target aborts inside a task, and the kernel writes the core
         (with the task that called abort() running).

Exit 0: passed; 77: skipped (gdb, or for 'abort' a kernel core file, is
not available, which the output says); anything else: failed. Every gdb
and the target run under timeouts, so a hang fails the test instead of
stopping CTest.
"""
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

TIMEOUT = 90

# name -> the function the task blocks in (tests/gdb_target.c)
TASKS = {
    "sleeper": "gdb_sleeper_sleeps",
    "waiter": "gdb_waiter_awaits_future",
    "parent": "gdb_parent_awaits_child",
    "child": "gdb_child_reads_pipe",
    "holder": "gdb_holder_holds_lock",
    "locker": "gdb_locker_takes_lock",
    "control": "gdb_control_waits",
}

failures = []


def check(cond, what):
    print(("ok:     " if cond else "FAILED: ") + what)
    if not cond:
        failures.append(what)


def skip(why):
    print("SKIPPED: " + why)
    sys.exit(77)


def gdb(script, target_args, commands):
    cmd = ["gdb", "-nx", "-batch", "-iex", "set debuginfod enabled off",
           "-iex", "set auto-load safe-path /", "-x", script]
    for c in commands:
        cmd += ["-ex", c]
    cmd += target_args
    print("$ " + " ".join(("'%s'" % a if " " in a else a) for a in cmd))
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, timeout=TIMEOUT, text=True).stdout
    print(out)
    return out


def start_target(target, args, cwd, preexec=None):
    env = dict(os.environ)
    # AddressSanitizer turns core files off unless told (abort mode).
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":disable_coredump=0").lstrip(":")
    proc = subprocess.Popen([target] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=None, cwd=cwd, env=env, text=True, preexec_fn=preexec)
    before = []
    signal.alarm(TIMEOUT)  # reading "ready" must not hang
    for line in proc.stdout:
        if line.startswith("ready "):
            break
        before.append(line.strip())
    signal.alarm(0)
    print("target pid %d, tasks:\n  %s" % (proc.pid, "\n  ".join(before)))
    return proc, before


def sections_by_task(bt_output):
    """'cio bt all' output: task name -> the lines of its section."""
    sections, name = {}, None
    for line in bt_output.splitlines():
        m = re.match(r'task \d+ "([^"]+)"', line)
        if m:
            name = m.group(1)
            sections[name] = [line]
        elif name and line.startswith("  "):
            sections[name].append(line)
        else:
            name = None
    return sections


def task_ids(tasks_output):
    ids = {}
    for line in tasks_output.splitlines():
        m = re.match(r"\s+(\d+)\s+(\S+)\s+(scheduled|running|waiting|done)\s", line)
        if m:
            ids[m.group(2)] = int(m.group(1))
    return ids


def check_tasks_and_frames(out, running=None):
    """The checks every mode shares, on the output of gdb with cio tasks,
    cio bt all, cio graph, cio task PARENT, info frame, bt and up."""
    tasks_part = out.split("==bt==")[0]
    ids = task_ids(tasks_part)
    for name in TASKS:
        check(name in ids, "cio tasks lists task %s" % name)
    rows = {name: line for line in tasks_part.splitlines()
            for name in TASKS if re.match(r"\s+\d+\s+%s\s" % name, line)}
    check("sleep deadline +3599." in rows.get("sleeper", "")
          or "sleep deadline +3600." in rows.get("sleeper", ""),
          "sleeper waits on a sleep with its deadline an hour away")
    check("fd readable" in rows.get("child", "") and "deadline" not in rows.get("child", ""),
          "child waits on fd readable, without a deadline")
    check(re.search(r'-> task %d "child"' % ids.get("child", -1), rows.get("parent", ""))
          is not None, "parent waits on task child")
    check(re.search(r"\block\b", rows.get("locker", "")) is not None, "locker waits on a lock")
    check(re.search(r"future 0x[0-9a-f]+", rows.get("waiter", "")) is not None,
          "waiter waits on a future")
    check(re.search(r'\s%d "parent"' % ids.get("parent", -1), rows.get("child", "")) is not None,
          "child's parent is parent")
    for name in TASKS:
        check("gdb_target.c:" in rows.get(name, ""), "%s has its spawn site" % name)

    bt_part = out.split("==bt==")[1].split("==graph==")[0]
    sections = sections_by_task(bt_part)
    for name, fn in TASKS.items():
        text = "\n".join(sections.get(name, []))
        if name == running:
            check("running" in text, "cio bt says %s is running" % name)
            continue
        check(re.search(r"#\d+\s+0x[0-9a-f]+ in %s at .*gdb_target\.c:\d+" % fn, text) is not None,
              "cio bt all: %s has a frame in %s" % (name, fn))
        frames = [l for l in sections.get(name, []) if l.lstrip().startswith("#")]
        check(bool(frames) and " in cio__ctx_jump " in frames[0],
              "cio bt all: %s starts where it switched away (cio__ctx_jump)" % name)
        check("ctx_trampoline" in text, "cio bt all: %s unwinds to the trampoline" % name)
        # Its own function only: no other task's function in its frames.
        others = [f for n, f in TASKS.items() if n != name and f != fn]
        check(not any(f in text for f in others),
              "cio bt all: %s shows no other task's function" % name)

    graph_part = out.split("==graph==")[1].split("==select==")[0]
    check(re.search(r'^\(T\) %d "parent".*\n└── \(T\) %d "child"' %
                    (ids.get("parent", -1), ids.get("child", -1)), graph_part, re.M) is not None,
          "cio graph nests child under parent")

    select_part = out.split("==select==")[1].split("==none==")[0]
    check('"parent" selected' in select_part, "cio task selects parent")
    check("Stack level 1, frame at 0x" in select_part, "info frame works in the task")
    bt_lines = [l for l in select_part.splitlines() if l.startswith("#")]
    check(any("gdb_parent_awaits_child" in l for l in bt_lines),
          "bt in the selected task shows gdb_parent_awaits_child")
    check(bt_lines and not any(l.startswith("#0 ") for l in bt_lines),
          "bt in the selected task hides the thread's own frame 0")
    check("==none==" in out and re.search(r"==none==\n.*no task selected", out) is not None,
          "cio task none goes back")
    # cio stacks: a row per task with its size and lowest-sp bound, and a
    # census line per spawn site.
    stacks = out.split("==stacks==")[-1].split("==select==")[0]
    for name in TASKS:
        m = re.search(r"^\s+%d\s+%s\s+(\d+)\s+(\d+|-)\s+(\d+)\s+\S*gdb_target\.c:\d+"
                      % (ids.get(name, -1), name), stacks, re.M)
        check(m is not None and int(m.group(3)) > 0 and int(m.group(3)) <= int(m.group(1)),
              "cio stacks: %s has a size and a bound of its high-water mark" % name)
    check(re.search(r"^\s+\S*gdb_target\.c:\d+ max>=\d+ of \d+ B \(\d+%\), \d+ tasks?$",
                    stacks, re.M) is not None, "cio stacks: a census line per spawn site")
    return ids


COMMANDS = ["cio loops", "cio tasks", "echo ==bt==\\n", "cio bt all", "echo ==graph==\\n",
            "cio graph", "echo ==stacks==\\n", "cio stacks", "echo ==select==\\n"]


def select_commands(parent_id):
    return ["cio task %d" % parent_id, "info frame", "bt", "up 5", "info locals",
            "echo ==none==\\n", "cio task none", "bt 1"]


def parent_id(lines):
    for line in lines:
        m = re.match(r"task id=(\d+) name=parent ", line)
        if m:
            return int(m.group(1))
    return 0


def run_core(target, script, tmp):
    proc, before = start_target(target, [], tmp)
    try:
        core = os.path.join(tmp, "core")
        gdb(script, ["-p", str(proc.pid)], ["cio gcore " + core])
        check(os.path.exists(core), "cio gcore wrote a core")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = gdb(script, [target, core], COMMANDS + select_commands(parent_id(before)))
    check_tasks_and_frames(out)


def run_live(target, script, tmp):
    proc, before = start_target(target, [], tmp)
    try:
        out = gdb(script, ["-p", str(proc.pid)], COMMANDS + select_commands(parent_id(before)))
        check_tasks_and_frames(out)
        check(proc.poll() is None, "the target still runs after gdb detached")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        rest = proc.stdout.read()
        rc = proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print("target output after go:\n" + rest)
    again = [l.replace("again ", "task ", 1) for l in rest.splitlines() if l.startswith("again ")]
    # "control" ran once more (it woke to read the line); nothing else moved.
    def steady(lines):
        return [l for l in lines if "name=control " not in l]
    check(len(again) == len(before) and steady(again) == steady(before),
          "every task has the state and switch count it had before gdb")
    check("done" in rest.splitlines(), "the target finished its tasks normally")
    check(rc == 0, "the target exited 0 (it exited %s)" % rc)


def core_file_pattern():
    try:
        with open("/proc/sys/kernel/core_pattern") as f:
            return f.read().strip()
    except OSError:
        return ""


def run_abort(target, script, tmp):
    pattern = core_file_pattern()
    if pattern.startswith("|") or "/" in pattern or "%" in pattern.replace("%p", ""):
        skip("the kernel's core_pattern is %r: this test needs a core file in the "
             "working directory ('core' or 'core.%%p')" % pattern)

    def allow_core():
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    proc, before = start_target(target, ["abort"], tmp, allow_core)
    proc.wait(timeout=TIMEOUT)
    cores = [f for f in os.listdir(tmp) if f == "core" or f.startswith("core.")]
    check(proc.returncode == -signal.SIGABRT, "the target died of SIGABRT (%s)" % proc.returncode)
    if not cores:
        limit = resource.getrlimit(resource.RLIMIT_CORE)[1]
        skip("the kernel wrote no core file (core_pattern %r, RLIMIT_CORE hard limit %s)"
             % (pattern, limit))
    core = os.path.join(tmp, cores[0])
    out = gdb(script, [target, core], COMMANDS + select_commands(parent_id(before))
              + ["echo ==thread==\\n", "bt"])
    check_tasks_and_frames(out, running="control")
    thread_bt = out.split("==thread==")[1]
    check("gdb_control_waits" in thread_bt and "abort" in thread_bt,
          "the thread's own bt shows control calling abort")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("core", "live", "abort"):
        sys.exit("usage: gdb_test.py core|live|abort TARGET SCRIPT")
    mode = sys.argv[1]
    target, script = (os.path.abspath(a) for a in sys.argv[2:])
    if shutil.which("gdb") is None:
        skip("gdb is not installed (Debian: apt-get install gdb)")
    probe = subprocess.run(["gdb", "-nx", "-batch", "-ex", "python import gdb.unwinder"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=TIMEOUT).stdout
    if "Error" in probe or "not supported" in probe:
        print(probe)
        check(False, "gdb has Python with gdb.unwinder")
        sys.exit(1)
    with tempfile.TemporaryDirectory(prefix="cio-gdb-") as tmp:
        {"core": run_core, "live": run_live, "abort": run_abort}[mode](target, script, tmp)
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
