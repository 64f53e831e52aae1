# cio-gdb.py: see the tasks of a cio program from gdb, live or in a core file.
#
#   gdb -x tools/cio-gdb.py PROGRAM CORE         (or -p PID)
#   (gdb) source tools/cio-gdb.py                (in a running session)
#
# Commands:
#   cio loops            every live loop of the process
#   cio tasks            every task of every loop: id, name, state, what it
#                        waits on, spawn site, parent, switches, stack
#   cio bt ID|all        the frames of a suspended task (or of all of them)
#   cio task ID          select a task: bt, frame N, up, info frame and
#                        info locals then work on its stack
#   cio task none        back to the thread's own frames
#   cio graph            the tasks as a tree of parents and children, with
#                        what each waits on and who waits on the same thing
#   cio gcore [FILE]     gcore, then the task stacks gcore could not read
#                        (see repair_core: Linux 6.13+ guard regions)
#
# A task is named by its id ("7"), by loop slot and id ("0:7") when several
# loops are live, or by the address of its cio_task ("0x55d0c0a4e2a0").
#
# How it works. Everything is read from memory through the DWARF types of
# the library (build cio with -g: RelWithDebInfo, the default, or Debug).
# The process-wide live-loop table of src/core/handle.c (the statics
# slot_chunks and slot_count) leads to every loop; each loop links every
# live future and task through cio_future.loop_link, and a task's future is
# the first member of its cio__task. A suspended task's registers sit at its
# saved stack pointer (ctx.sp) in the layout src/core/arch/switch_*.S
# documents. To show its frames, an unwinder (gdb.unwinder) presents those
# registers as the caller of the thread's innermost frame, as folly's fiber
# script does, and a frame filter hides that innermost frame from bt. So gdb
# unwinds the task with its own DWARF machinery (no frame pointers needed),
# and nothing is ever written to the inferior: it works on core files, and
# a live process is left exactly as it was.

import struct

import gdb
import gdb.unwinder

# Bounds on every walk, so that a corrupt list cannot hang the script.
MAX_FUTURES = 1000000
MAX_FRAMES = 64

# handle.c: SLOT_BITS 24, SLOT_CHUNK 256 (the table has 1 << 24 slots in
# chunks of 256). Macros leave no trace in -g2 debug info, so the chunk
# size is derived from the array's length when it can be.
SLOT_INDEX_BITS = 24

# The enums of src/core/future.h and task.h, used only as uint8_t fields,
# so their constants may be missing from the debug info; these are the
# values in the headers, checked against the debug info when it has them.
_ENUM_DEFAULTS = {
    "CIO__KIND_TASK": 1,
    "CIO__PENDING": 0,
    "CIO__TASK_SCHEDULED": 0,
    "CIO__TASK_RUNNING": 1,
    "CIO__TASK_SUSPENDED": 2,
    "CIO__TASK_FINISHED": 3,
}
_enum_cache = {}


def _enum(name):
    if name not in _enum_cache:
        try:
            _enum_cache[name] = int(gdb.parse_and_eval(name))
        except gdb.error:
            _enum_cache[name] = _ENUM_DEFAULTS[name]
    return _enum_cache[name]


INT64_MAX = (1 << 63) - 1


class CioError(gdb.GdbError):
    pass


def _type(name):
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        raise CioError(
            "cio-gdb: no debug information for the type %s: build cio with -g "
            "(CMAKE_BUILD_TYPE RelWithDebInfo or Debug)" % name)


def _offsetof(type_, field):
    for f in type_.strip_typedefs().fields():
        if f.name == field:
            return f.bitpos // 8
    raise CioError("cio-gdb: %s has no field %s (a cio this script does not know)"
                   % (type_, field))


def _field(val, name, default=None):
    """A field that may be missing from another version of cio."""
    try:
        return val[name]
    except gdb.error:
        return default


def _int(val, default=0):
    if val is None:
        return default
    try:
        return int(val)
    except (gdb.error, gdb.MemoryError):
        return default


def _string(ptr, limit=256):
    """A C string read a little at a time, so that a string near the end
    of a mapping (or a corrupt pointer) costs no more than an error text."""
    if ptr is None:
        return None
    addr = _int(ptr)
    if addr == 0:
        return None
    inferior = gdb.selected_inferior()
    data = b""
    while len(data) < limit:
        try:
            chunk = bytes(inferior.read_memory(addr + len(data), 16))
        except gdb.MemoryError:
            try:
                chunk = bytes(inferior.read_memory(addr + len(data), 1))
            except gdb.MemoryError:
                return "<unreadable at 0x%x>" % addr
        end = chunk.find(b"\0")
        if end >= 0:
            data += chunk[:end]
            break
        data += chunk
    return data[:limit].decode("utf-8", "replace")


def _read_u64(addr):
    data = gdb.selected_inferior().read_memory(addr, 8)
    return struct.unpack("<Q", bytes(data))[0]


def _static(name, filename):
    """A static variable of one of the library's files."""
    found = []
    try:
        found = gdb.lookup_static_symbols(name)
    except (AttributeError, gdb.error):
        pass
    for sym in found:
        if sym.symtab and sym.symtab.filename.endswith(filename):
            return sym.value()
    if found:
        return found[0].value()
    try:
        return gdb.parse_and_eval("'%s'::%s" % (filename, name))
    except gdb.error:
        raise CioError("cio-gdb: cannot find the static %s of %s: is this a cio program "
                       "with debug information?" % (name, filename))


_symbols = {}


def _symbolize(pc):
    """'function+offset (file:line)' for a code address (cached: ten
    thousand tasks of one function cost one lookup)."""
    if not pc:
        return "?"
    if pc not in _symbols:
        _symbols[pc] = _symbolize_uncached(pc)
    return _symbols[pc]


def _symbolize_uncached(pc):
    text = "0x%x" % pc
    try:
        block = gdb.block_for_pc(pc)
        while block is not None and block.function is None:
            block = block.superblock
        if block is not None:
            text = "%s+%d" % (block.function.name, pc - block.function.value().address)
    except (gdb.error, RuntimeError):
        pass
    if text.startswith("0x"):
        try:
            out = gdb.execute("info symbol 0x%x" % pc, to_string=True).strip()
            if not out.startswith("No symbol"):
                text = out.split(" in section")[0].replace(" + ", "+")
        except gdb.error:
            pass
    sal = gdb.find_pc_line(pc)
    if sal.symtab is not None:
        text += " (%s:%d)" % (sal.symtab.filename, sal.line)
    return text


# --------------------------------------------------------------------------
# Reading loops and tasks

class Layout(object):
    """Offsets and sizes of the fields the script reads, from the DWARF
    types, computed once per session. Reading a task is then one memory
    read of the whole structure and a few struct.unpack calls: reading
    through gdb.Value field by field costs ten times more, which matters at
    ten thousand tasks. A field missing from the debug information (another
    version of cio) reads as None."""

    _instance = None

    @classmethod
    def get(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self):
        self.future_t = _type("cio_future")
        self.task_t = _type("cio__task")
        self.wait_t = _type("cio__wait")
        self.future_size = self.future_t.strip_typedefs().sizeof
        self.task_size = self.task_t.strip_typedefs().sizeof
        self.wait_size = self.wait_t.strip_typedefs().sizeof
        self.fut_in_task = _offsetof(self.task_t, "fut")
        f = self._fields(self.future_t, ["loop_link.next", "kind", "state"])
        self.future = f
        self.link_in_future = f["loop_link.next"][0]
        self.task = self._fields(self.task_t, [
            "id", "number", "name", "parent_id", "spawn_site", "spawn_pc", "switches",
            "started_ns", "run_state", "started", "wait", "fn", "stack.lo", "stack.size",
            "ctx.sp", "fut.state", "stack_low_sp"])
        self.wait = self._fields(self.wait_t, ["what", "future", "deadline"])

    @staticmethod
    def _fields(type_, paths):
        result = {}
        for path in paths:
            t, offset, ok = type_, 0, True
            for name in path.split("."):
                field = None
                for f in t.strip_typedefs().fields():
                    if f.name == name:
                        field = f
                        break
                if field is None:
                    ok = False
                    break
                offset += field.bitpos // 8
                t = field.type
            if not ok:
                result[path] = None
                continue
            bare = t.strip_typedefs()
            signed = False
            if bare.code == gdb.TYPE_CODE_INT:
                try:
                    signed = bare.is_signed  # gdb 12 and later
                except (AttributeError, ValueError):
                    signed = not str(bare).startswith("unsigned")
            result[path] = (offset, bare.sizeof, signed)
        return result

    @staticmethod
    def decode(data, field, default=None):
        if field is None:
            return default
        offset, size, signed = field
        if size not in (1, 2, 4, 8) or offset + size > len(data):
            return default
        return int.from_bytes(data[offset:offset + size], "little", signed=signed)


def _read(addr, size):
    return bytes(gdb.selected_inferior().read_memory(addr, size))


class Task(object):
    """What the commands show of one task, read once."""

    def __init__(self, loop, addr):
        lay = Layout.get()
        data = _read(addr, lay.task_size)
        f = lay.task

        def get(name, default=0):
            return Layout.decode(data, f[name], default)

        self.loop = loop
        self.addr = addr                     # the cio__task
        self.future_addr = addr + lay.fut_in_task  # its cio_future (a cio_task *)
        self.id = get("id")
        self.number = get("number")
        self.name = _string(get("name")) or "Task-%d" % self.number
        self.parent_id = get("parent_id")
        self.spawn_site = _string(get("spawn_site"))
        self.spawn_pc = get("spawn_pc")
        self.switches = get("switches")
        self.started_ns = get("started_ns")
        self.run_state = get("run_state")
        self.started = get("started", 1)
        self.fut_state = get("fut.state")
        self.stack_lo = get("stack.lo")
        self.stack_size = get("stack.size")
        self.sp = get("ctx.sp")
        self.wait = get("wait")
        self.fn = get("fn")
        self.low_sp = get("stack_low_sp")

    @property
    def function(self):
        return _symbolize(self.fn).split(" (")[0] if self.fn else "?"

    @property
    def done(self):
        return (self.fut_state != _enum("CIO__PENDING")
                or self.run_state == _enum("CIO__TASK_FINISHED"))

    @property
    def running(self):
        return not self.done and self.run_state == _enum("CIO__TASK_RUNNING")

    @property
    def has_context(self):
        """True when ctx.sp holds a context a backtrace can start from."""
        return not self.done and not self.running and self.started and self.sp != 0

    @property
    def state(self):
        if self.done:
            return "done"
        if self.running:
            return "running"
        if self.run_state == _enum("CIO__TASK_SUSPENDED"):
            return "waiting"
        return "scheduled"

    @property
    def stack_used(self):
        """Bytes of the stack in use at the suspension (0 while running)."""
        top = self.stack_lo + self.stack_size
        if self.has_context and self.stack_lo < self.sp <= top:
            return top - self.sp
        return 0

    @property
    def low_water(self):
        """Bytes down to the lowest stack pointer seen at a switch: a lower
        bound of the high-water mark (0: not known)."""
        top = self.stack_lo + self.stack_size
        if self.stack_lo and self.stack_lo <= self.low_sp <= top:
            return top - self.low_sp
        return 0

    @property
    def site(self):
        if self.spawn_site:
            return self.spawn_site
        if self.spawn_pc:
            return _symbolize(self.spawn_pc)
        return "?"

    def label(self):
        return '%d "%s"' % (self.id, self.name)

    def wait_record(self):
        """(what, future, deadline) of the task's wait, or None."""
        if self.done or self.running or not self.wait:
            return None
        lay = Layout.get()
        data = _read(self.wait, lay.wait_size)
        return (_string(Layout.decode(data, lay.wait["what"], 0)) or "?",
                Layout.decode(data, lay.wait["future"], 0),
                Layout.decode(data, lay.wait["deadline"], INT64_MAX))


class Loop(object):
    def __init__(self, slot, ptr):
        self.slot = slot
        self.ptr = ptr
        self.addr = int(ptr)
        self.tasks = []
        self.futures = 0
        self.broken = None
        self.tasks_by_future = {}
        self.tasks_by_id = None

    def read(self):
        lay = Layout.get()
        head = int(self.ptr.dereference()["futures"].address)
        kind_task = _enum("CIO__KIND_TASK")
        link_off = lay.link_in_future
        try:
            link = _read_u64(head)
            while link != head:
                if self.futures >= MAX_FUTURES:
                    self.broken = "more than %d futures: walk stopped" % MAX_FUTURES
                    break
                if link == 0:
                    self.broken = "null link after %d futures" % self.futures
                    break
                fut = link - link_off
                data = _read(fut, lay.future_size)
                self.futures += 1
                if Layout.decode(data, lay.future["kind"]) == kind_task:
                    task = Task(self, fut - lay.fut_in_task)
                    self.tasks.append(task)
                    self.tasks_by_future[fut] = task
                link = Layout.decode(data, lay.future["loop_link.next"])
        except gdb.MemoryError as e:
            self.broken = "unreadable list after %d futures (%s)" % (self.futures, e)
        # debug_gen (where cio has it) is odd while the futures list changes:
        # the process stopped (or crashed) in the middle of a change.
        gen = _field(self.ptr.dereference(), "debug_gen")
        if gen is not None and _int(gen) % 2 == 1 and not self.broken:
            self.broken = "stopped while the task list was changing: it may be incomplete"
        return self

    def field(self, name, default=0):
        return _int(_field(self.ptr.dereference(), name), default)

    def now_ns(self):
        """The loop's clock as it last read it (a core has no other now)."""
        if not hasattr(self, "_now"):
            self._now = self.field("now_ns")
        return self._now

    def task(self, task_id):
        if self.tasks_by_id is None:
            self.tasks_by_id = dict((t.id, t) for t in self.tasks)
        return self.tasks_by_id.get(task_id)


def loops():
    """Every loop in the live-loop table, with its futures walked."""
    chunks = _static("slot_chunks", "handle.c")
    count = _int(_static("slot_count", "handle.c"))
    nchunks = chunks.type.strip_typedefs().range()[1] + 1
    chunk_size = (1 << SLOT_INDEX_BITS) // nchunks
    result = []
    for index in range(min(count, nchunks * chunk_size)):
        chunk = chunks[index // chunk_size]
        if int(chunk) == 0:
            continue
        try:
            ptr = chunk[index % chunk_size]["loop"]
            if int(ptr) == 0:
                continue
        except gdb.MemoryError:
            continue
        result.append(Loop(index, ptr).read())
    return result


def find_task(arg):
    """The task an argument names: ID, SLOT:ID or an address."""
    arg = arg.strip()
    all_loops = loops()
    if arg.startswith("0x"):
        want = int(arg, 16)
        fut_off = Layout.get().fut_in_task
        for loop in all_loops:
            for t in loop.tasks:
                if want in (t.addr, t.addr + fut_off):
                    return t
        raise CioError("cio: no live task at %s" % arg)
    slot = None
    if ":" in arg:
        s, arg = arg.split(":", 1)
        slot = int(s)
    try:
        task_id = int(arg)
    except ValueError:
        raise CioError("cio: a task is named by ID, SLOT:ID or address, not %r" % arg)
    found = [l.task(task_id) for l in all_loops if slot is None or l.slot == slot]
    found = [t for t in found if t is not None]
    if not found:
        raise CioError("cio: no live task with id %d" % task_id)
    if len(found) > 1:
        raise CioError("cio: %d loops have a task %d: say which, as SLOT:ID (see cio loops)"
                       % (len(found), task_id))
    return found[0]


def describe_wait(task):
    """What a waiting task waits on, in words."""
    if task.done:
        return "-"
    if task.running:
        return "(running)"
    try:
        rec = task.wait_record()
    except gdb.MemoryError:
        return "<wait record unreadable at 0x%x>" % task.wait
    if rec is None:
        return "?" if task.state == "waiting" else "-"
    # The dump's wait records may gain a kind and an object; until then
    # the description string, the future and the deadline say it all.
    what, fut, deadline = rec
    parts = [what]
    if fut:
        awaited = task.loop.tasks_by_future.get(fut)
        if awaited is not None:
            parts.append("-> task " + awaited.label())
        elif what == "future":
            parts[0] = "future 0x%x" % fut
        else:
            parts.append("(future 0x%x)" % fut)
    if deadline != INT64_MAX:
        now = task.loop.now_ns()
        parts.append("deadline %+.3fs" % ((deadline - now) / 1e9))
    return " ".join(parts)


def waited_future(task):
    try:
        rec = task.wait_record()
    except gdb.MemoryError:
        return 0
    return rec[1] if rec else 0


# --------------------------------------------------------------------------
# Registers of a suspended task

def saved_registers(sp):
    """The registers cio__ctx_switch saved at sp, as (name, value) pairs
    with the caller's pc and stack pointer; the layout is the one
    src/core/arch/switch_<isa>.S documents."""
    arch = gdb.selected_inferior().architecture().name()
    if "x86-64" in arch or "x86_64" in arch:
        regs = [(name, _read_u64(sp + 8 * i))
                for i, name in enumerate(("r15", "r14", "r13", "r12", "rbx", "rbp", "rip"))]
        regs.append(("rsp", sp + 56))
        return regs
    if "aarch64" in arch:
        regs = [("x%d" % (19 + i), _read_u64(sp + 8 * i)) for i in range(10)]
        regs.append(("x29", _read_u64(sp + 80)))
        regs.append(("x30", _read_u64(sp + 88)))
        regs.append(("pc", _read_u64(sp + 88)))
        regs.append(("sp", sp + 176))
        # d8-d15 are at sp + 96 ... 152; gdb exposes them as pseudo
        # registers (parts of v8-v15), which an unwinder cannot give, so
        # floating-point locals of outer frames may read wrong.
        return regs
    raise CioError("cio: unsupported architecture %s (cio switches on x86-64 and aarch64)"
                   % arch)


def _thread_of(loop):
    """The gdb thread running (or last running) a loop: its owner field is
    the pthread_t, which gdb knows as the thread's handle."""
    owner = loop.field("owner")
    for th in gdb.selected_inferior().threads():
        try:
            if int.from_bytes(bytes(th.handle()), "little") == owner:
                return th
        except (gdb.error, RuntimeError, TypeError, ValueError):
            pass
    return gdb.selected_thread()


class _FrameId(object):
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class _Selection(object):
    """The task whose stack the unwinder shows, and on which thread."""
    task = None
    ptid = None
    regs = None
    frame_sp = None


class CioUnwinder(gdb.unwinder.Unwinder):
    """Presents the selected task's saved registers as the caller of the
    innermost frame of the thread that runs its loop. It reads nothing from
    the inferior (the registers were read when the task was selected) and
    writes nothing."""

    def __init__(self):
        super(CioUnwinder, self).__init__("cio-task")
        self.u64 = None

    def __call__(self, pending_frame):
        sel = _Selection
        if sel.task is None or pending_frame.level() != 0:
            return None
        th = gdb.selected_thread()
        if th is None or th.ptid != sel.ptid:
            return None
        if self.u64 is None:
            self.u64 = gdb.lookup_type("unsigned long")
        arch = pending_frame.architecture().name()
        pc_name = "rip" if "x86" in arch else "pc"
        # The frame's id takes the task's stack pointer, so the caller (on
        # the task's stack, above it) counts as outer, as gdb requires.
        pc = pending_frame.read_register(pc_name)
        info = pending_frame.create_unwind_info(_FrameId(gdb.Value(sel.frame_sp).cast(self.u64),
                                                         pc))
        for name, value in sel.regs:
            try:
                info.add_saved_register(name, gdb.Value(value).cast(self.u64))
            except (gdb.error, ValueError):
                pass
        return info


class CioFrameFilter(object):
    """Hides the thread's own innermost frame while a task is selected: the
    frames above it are the task's."""

    def __init__(self):
        self.name = "cio-task"
        self.priority = 100
        self.enabled = True
        gdb.frame_filters[self.name] = self

    def filter(self, frame_iter):
        if _Selection.task is None:
            return frame_iter
        return self._skip_innermost(frame_iter)

    def _skip_innermost(self, frame_iter):
        for decorator in frame_iter:
            frame = decorator.inferior_frame()
            th = gdb.selected_thread()
            if frame.level() == 0 and th is not None and th.ptid == _Selection.ptid:
                continue
            yield decorator


def select_task(task):
    if not task.has_context:
        if task.running:
            raise CioError("cio: task %s is running: its frames are its thread's own "
                           "(thread, bt)" % task.label())
        raise CioError("cio: task %s is %s: it has no saved context" % (task.label(), task.state))
    th = _thread_of(task.loop)
    if th is None:
        raise CioError("cio: no thread to show the task on (no process or core?)")
    th.switch()
    _Selection.regs = saved_registers(task.sp)
    _Selection.frame_sp = task.sp
    _Selection.ptid = th.ptid
    _Selection.task = task
    gdb.invalidate_cached_frames()
    return th


def deselect_task():
    _Selection.task = None
    _Selection.regs = None
    gdb.invalidate_cached_frames()


def _on_continue(event):
    # The saved context is stale once the process runs again.
    if _Selection.task is not None:
        print("cio: task %s deselected (the process runs)" % _Selection.task.label())
        deselect_task()


def task_frames(task):
    """(level, pc, function, file:line) of a suspended task's frames."""
    previous = _Selection.task, _Selection.ptid, _Selection.regs, _Selection.frame_sp
    thread = gdb.selected_thread()
    frames = []
    try:
        select_task(task)
        frame = gdb.newest_frame().older()
        level = 1
        while frame is not None and len(frames) < MAX_FRAMES:
            pc = frame.pc()
            if pc == 0:
                break
            name = frame.name()
            sal = frame.find_sal()
            where = "%s:%d" % (sal.symtab.filename, sal.line) if sal.symtab else ""
            if name is None:
                name = _symbolize(pc).split(" (")[0]
            frames.append((level, pc, name, where))
            if name == "cio__ctx_trampoline":
                break
            frame = frame.older()
            level += 1
    finally:
        _Selection.task, _Selection.ptid, _Selection.regs, _Selection.frame_sp = previous
        gdb.invalidate_cached_frames()
        if thread is not None and thread.is_valid():
            thread.switch()
    return frames


# --------------------------------------------------------------------------
# Commands

class CioPrefix(gdb.Command):
    """Inspect the loops and tasks of a cio program (live or core).

cio loops         the live loops
cio tasks         every task: id, name, state, wait, spawn site, parent, switches, stack
cio bt ID|all     the frames of a suspended task, or of every one
cio task ID|none  select a task, so that bt, frame, info frame, info locals work in it
cio graph         parents and children, with what each waits on
cio stacks        per task: stack size, used at the suspension, lowest sp seen; per spawn site: the census"""

    def __init__(self):
        super(CioPrefix, self).__init__("cio", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)


class CioLoops(gdb.Command):
    """List the live cio loops: slot, address, thread, state, task and future counts."""

    def __init__(self):
        super(CioLoops, self).__init__("cio loops", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        all_loops = loops()
        if not all_loops:
            print("no live cio loop")
            return
        for loop in all_loops:
            th = _thread_of(loop)
            flags = [f for f in ("running", "stopping", "closing", "closed", "debug")
                     if loop.field(f)]
            print("loop %d at 0x%x: thread %s (LWP %s), %s, tasks=%d futures=%d "
                  "iterations=%d now=%.6fs%s" % (
                      loop.slot, loop.addr, th.num if th else "?",
                      th.ptid[1] if th else "?", ",".join(flags) or "idle",
                      len(loop.tasks), loop.futures, loop.field("iterations"),
                      loop.field("now_ns") / 1e9,
                      " (%s)" % loop.broken if loop.broken else ""))


class CioTasks(gdb.Command):
    """List every task of every live cio loop."""

    def __init__(self):
        super(CioTasks, self).__init__("cio tasks", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        all_loops = loops()
        if not all_loops:
            print("no live cio loop")
            return
        for loop in all_loops:
            print("loop %d at 0x%x: %d tasks%s" % (loop.slot, loop.addr, len(loop.tasks),
                                                  " (%s)" % loop.broken if loop.broken else ""))
            rows = [("ID", "NAME", "STATE", "WAITS ON", "FUNCTION", "SPAWNED AT", "PARENT",
                     "SWITCHES", "STACK", "USED")]
            for t in loop.tasks:
                parent = loop.task(t.parent_id)
                rows.append((str(t.id), t.name, t.state, describe_wait(t), t.function, t.site,
                             parent.label() if parent else (str(t.parent_id) if t.parent_id
                                                            else "-"),
                             str(t.switches), str(t.stack_size),
                             str(t.stack_used) if t.stack_used else "-"))
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


class CioStacks(gdb.Command):
    """cio stacks: per task, its stack size, the bytes in use at its
    suspension and the depth at the lowest stack pointer seen at a switch
    (a lower bound of its high-water mark, kept at every switch); then,
    per spawn site, the census of the tasks alive: the deepest bound and
    how many tasks. The exact marks (cio_task_stack_high_water, the dump's
    census) scan stack memory that a core may not hold; the tasks that
    ended are in the program's own census, not here."""

    def __init__(self):
        super(CioStacks, self).__init__("cio stacks", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        all_loops = loops()
        if not all_loops:
            print("no live cio loop")
            return
        for loop in all_loops:
            print("loop %d at 0x%x: %d tasks" % (loop.slot, loop.addr, len(loop.tasks)))
            rows = [("ID", "NAME", "STACK", "USED", "HWM>=", "SPAWNED AT")]
            sites = {}
            for t in loop.tasks:
                rows.append((str(t.id), t.name, str(t.stack_size),
                             str(t.stack_used) if t.stack_used else "-",
                             str(t.low_water) if t.low_water else "-", t.site))
                if t.stack_lo:
                    deepest, size, count = sites.get(t.site, (0, t.stack_size, 0))
                    if t.low_water >= deepest:
                        deepest, size = t.low_water, t.stack_size
                    sites[t.site] = (deepest, size, count + 1)
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            print("  census (tasks alive, lowest stack pointer seen):")
            for site, (deepest, size, count) in sorted(sites.items(), key=lambda kv: -kv[1][0]):
                print("  %s max>=%d of %d B (%d%%), %d task%s" % (
                    site, deepest, size, deepest * 100 // size if size else 0, count,
                    "" if count == 1 else "s"))


class CioBt(gdb.Command):
    """cio bt ID|all: the frames of a suspended task (or of every one), from
    its saved context."""

    def __init__(self):
        super(CioBt, self).__init__("cio bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if not arg:
            raise CioError("usage: cio bt ID|SLOT:ID|ADDRESS|all")
        if arg == "all":
            tasks = [t for loop in loops() for t in loop.tasks]
        else:
            tasks = [find_task(arg)]
        for t in tasks:
            print('task %d "%s" %s in %s, waits on: %s, spawned at %s' % (
                t.id, t.name, t.state, t.function, describe_wait(t), t.site))
            if not t.has_context:
                if t.running:
                    print("  (running: its frames are those of its thread, see bt)")
                elif t.done:
                    print("  (done: its stack is gone)")
                else:
                    print("  (not started yet: no frames)")
                continue
            try:
                for level, pc, name, where in task_frames(t):
                    print("  #%-2d 0x%016x in %s%s" % (level, pc, name,
                                                       " at " + where if where else ""))
            except (gdb.error, gdb.MemoryError) as e:
                print("  (cannot unwind: %s)" % e)


class CioTask(gdb.Command):
    """cio task ID|none: select a suspended task, so that bt, frame N, up,
    down, info frame and info locals work on its stack (its frames are
    numbered from 1: frame 0, the thread's own, is hidden from bt), or go
    back to the thread's own frames."""

    def __init__(self):
        super(CioTask, self).__init__("cio task", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if not arg:
            if _Selection.task is None:
                print("no task selected")
            else:
                print("task %s selected" % _Selection.task.label())
            return
        if arg == "none":
            deselect_task()
            try:
                gdb.newest_frame().select()
            except gdb.error:
                pass
            print("no task selected: the frames are the thread's own")
            return
        task = find_task(arg)
        th = select_task(task)
        print("task %s selected (on thread %d): its frames start at #1; "
              "'cio task none' to go back" % (task.label(), th.num))
        frame = gdb.newest_frame().older()
        if frame is not None:
            frame.select()
            gdb.execute("frame")


class CioGraph(gdb.Command):
    """The tasks of each loop as a tree of parents and children, with what
    each one waits on and the other tasks waiting on the same future."""

    def __init__(self):
        super(CioGraph, self).__init__("cio graph", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        for loop in loops():
            print("loop %d at 0x%x:" % (loop.slot, loop.addr))
            ids = set(t.id for t in loop.tasks)
            children = {}
            for t in loop.tasks:
                key = t.parent_id if t.parent_id in ids else 0
                children.setdefault(key, []).append(t)
            waiters = {}
            for t in loop.tasks:
                f = waited_future(t)
                if f:
                    waiters.setdefault(f, []).append(t)
            # Task -> awaited task edges, and the futures several tasks share.
            seen = set()

            def show(task, prefix, last, depth):
                if task.id in seen or depth > 1000:
                    return
                seen.add(task.id)
                branch = "" if depth == 0 else ("└── " if last else "├── ")
                line = '%s%s(T) %d "%s" %s' % (prefix, branch, task.id, task.name, task.state)
                if not task.done and not task.running and task.state == "waiting":
                    line += "  [%s]" % describe_wait(task)
                me = loop.tasks_by_future
                awaited_by = [w for w in waiters.get(task.future_addr, []) if w is not task]
                if awaited_by:
                    line += "  awaited by " + ", ".join(w.label() for w in awaited_by)
                f = waited_future(task)
                if f and f not in me:
                    others = [w for w in waiters.get(f, []) if w is not task]
                    if others:
                        line += "  (also waiting on it: %s)" % ", ".join(
                            w.label() for w in others)
                print(line)
                kids = children.get(task.id, [])
                ext = "" if depth == 0 else ("    " if last else "│   ")
                for i, k in enumerate(kids):
                    show(k, prefix + ext, i == len(kids) - 1, depth + 1)

            for root in children.get(0, []):
                show(root, "", True, 0)


PAGE = 4096
CHUNK = 1 << 20


def repair_core(path):
    """Fills in the parts of a core file gcore could not read.

    gdb's gcore copies each mapping in chunks of 1 MiB and writes zeros for
    a whole chunk when any byte of it cannot be read. Task stacks come from
    slabs whose guards are Linux 6.13+ guard regions (MADV_GUARD_INSTALL):
    one readable mapping with unreadable pages inside, so the chunks that
    hold the task stacks are lost, and with them every task's frames. This
    reads each such chunk again page by page from the live process and
    writes the readable pages into the core at their place. Returns the
    number of pages written."""
    inferior = gdb.selected_inferior()
    written = 0
    with open(path, "r+b") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            raise CioError("cio: %s is not a 64-bit little-endian ELF core" % path)
        phoff, = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack(
                "<IIQQQQQQ", f.read(56))
            if p_type != 1 or p_filesz == 0 or not p_flags & 4:  # PT_LOAD, readable
                continue
            for chunk in range(0, p_filesz, CHUNK):
                size = min(CHUNK, p_filesz - chunk)
                try:
                    inferior.read_memory(p_vaddr + chunk, size)
                    continue  # gcore read this chunk whole
                except gdb.MemoryError:
                    pass
                for page in range(chunk, chunk + size, PAGE):
                    try:
                        data = bytes(inferior.read_memory(p_vaddr + page,
                                                          min(PAGE, p_filesz - page)))
                    except gdb.MemoryError:
                        continue  # a guard page: it stays zero
                    f.seek(p_offset + page)
                    f.write(data)
                    written += 1
    return written


class CioGcore(gdb.Command):
    """cio gcore [FILE]: gcore, then fill in the task stacks gcore could not
    read (Linux 6.13+ guard regions inside a stack slab make gcore lose the
    whole 1 MiB around them). Live processes only; FILE is core.PID by
    default."""

    def __init__(self):
        super(CioGcore, self).__init__("cio gcore", gdb.COMMAND_FILES, gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        inferior = gdb.selected_inferior()
        if inferior.pid == 0:
            raise CioError("cio gcore: no live process")
        path = arg.strip() or "core.%d" % inferior.pid
        gdb.execute("gcore %s" % path)
        pages = repair_core(path)
        print("cio gcore: %s, %d page(s) gcore missed written back" % (path, pages))


CioPrefix()
CioLoops()
CioTasks()
CioBt()
CioTask()
CioGraph()
CioStacks()
CioGcore()
gdb.unwinder.register_unwinder(None, CioUnwinder(), replace=True)
CioFrameFilter()
# Sourcing the script again replaces the commands, the unwinder and the
# filter by name; the event handler of the earlier load is disconnected.
if "_cio_gdb_on_continue" in globals():
    gdb.events.cont.disconnect(globals()["_cio_gdb_on_continue"])
_cio_gdb_on_continue = _on_continue
gdb.events.cont.connect(_on_continue)
