# tulip's tasks in gdb: a core file or a stopped process.
#
#   (gdb) source /usr/local/share/tulip/tulip-gdb.py
#   (gdb) tulip-tasks            every task of every loop, with backtraces
#   (gdb) tulip-tasks 8          at most 8 frames per task
#
# What it reads: tl__loop_registry (every loop between tl_run's start and
# end), each loop's task table, and each suspended task's saved registers
# (the frame tl__context_switch pushed on the task's own stack; see
# src/arch/switch_*.S). It needs libtulip's debug information (built with
# -g, the default; a stripped library has no tl__loop type).
#
# Backtraces: gdb cannot be asked to unwind from arbitrary registers of a
# core file, so while it walks a task this script installs a frame
# unwinder that says "the caller of the innermost frame has the task's
# saved registers"; gdb's own DWARF unwinder takes over from there. Frame
# #0 of that walk (the thread's real innermost frame) is not printed.
# The task running when the process stopped is the thread's own stack:
# it is shown with the thread that runs its loop.
import struct

import gdb

try:
    from gdb.unwinder import Unwinder, register_unwinder
except ImportError:  # gdb older than 7.10
    Unwinder = None

STATES = {0: "free", 1: "ready", 2: "running", 3: "waiting", 4: "done"}
CHUNK_BITS = 10

_target = None  # the task's registers while one is being walked


def _arch():
    name = gdb.selected_inferior().architecture().name()
    if "aarch64" in name:
        return "aarch64"
    if "x86-64" in name or "x86_64" in name:
        return "x86_64"
    return None


def _saved_regs(sp):
    """The callee-saved registers tl__context_switch left at sp, and the
    caller's pc and sp, as {register: int}."""
    mem = gdb.selected_inferior().read_memory(sp, 96)
    arch = _arch()
    if arch == "x86_64":
        r15, r14, r13, r12, rbx, rbp, ret = struct.unpack("<7Q", mem[:56])
        return {"r15": r15, "r14": r14, "r13": r13, "r12": r12, "rbx": rbx,
                "rbp": rbp, "rip": ret, "rsp": sp + 56}
    if arch == "aarch64":
        w = struct.unpack("<12Q", mem[:96])
        regs = {"x%d" % (19 + i): w[i] for i in range(10)}
        regs.update({"x29": w[10], "x30": w[11], "pc": w[11],
                     "sp": sp + 160})
        return regs
    return None


if Unwinder is not None:
    class _TaskUnwinder(Unwinder):
        def __init__(self):
            super().__init__("tulip-task")

        def __call__(self, pending):
            if _target is None or pending.level() != 0:
                return None
            pc = "pc" if _arch() == "aarch64" else "rip"
            sp = "sp" if _arch() == "aarch64" else "rsp"

            class FrameId:
                def __init__(self, sp, pc):
                    self.sp = sp
                    self.pc = pc

            info = pending.create_unwind_info(
                FrameId(pending.read_register(sp), pending.read_register(pc)))
            ptr = gdb.lookup_type("void").pointer()
            for reg, val in _target.items():
                info.add_saved_register(reg, gdb.Value(val).cast(ptr))
            return info

    register_unwinder(None, _TaskUnwinder(), replace=True)


def _frames(limit, skip_newest=True):
    """Frames of the walk, from the thread's innermost one or its caller."""
    out = []
    f = gdb.newest_frame()
    if skip_newest:
        f = f.older()
    while f is not None and len(out) < limit:
        pc = f.pc()
        sal = f.find_sal()
        name = f.name() or "??"
        where = ""
        if sal.symtab is not None:
            where = " at %s:%d" % (sal.symtab.filename, sal.line)
        else:
            solib = gdb.solib_name(pc)
            if solib:
                where = " from %s" % solib
        out.append("0x%x in %s%s" % (pc, name, where))
        try:
            f = f.older()
        except gdb.error:
            break
    return out


def _task_backtrace(task, limit):
    global _target
    if Unwinder is None:
        return ["(this gdb has no Python unwinder API)"]
    try:
        sp = int(task["fiber"]["ctx"]["sp"])
    except gdb.error:
        return ["(the ucontext build: no saved frame to walk)"]
    regs = _saved_regs(sp)
    if regs is None:
        return ["(unknown architecture)"]
    _target = regs
    gdb.invalidate_cached_frames()
    try:
        return _frames(limit)
    except gdb.error as e:
        return ["(walk stopped: %s)" % e]
    finally:
        _target = None
        gdb.invalidate_cached_frames()


def _cstr(v):
    try:
        return v.string() if int(v) else None
    except gdb.error:
        return "?"


def _thread_of_loop(loop):
    """The gdb thread whose tl__self is this loop, or None."""
    old = gdb.selected_thread()
    found = None
    for th in gdb.selected_inferior().threads():
        try:
            th.switch()
            if int(gdb.parse_and_eval("tl__self")) == int(loop):
                found = th
                break
        except gdb.error:
            continue
    if old is not None:
        old.switch()
    return found


class TulipTasks(gdb.Command):
    """List every task of every tulip loop, with backtraces.
Usage: tulip-tasks [MAX-FRAMES]"""

    def __init__(self):
        super().__init__("tulip-tasks", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        limit = int(arg) if arg.strip() else 32
        try:
            loop = gdb.parse_and_eval("tl__loop_registry")
        except gdb.error:
            raise gdb.GdbError("tulip-tasks: no tl__loop_registry here (not a "
                               "tulip program, or libtulip has no debug "
                               "information)")
        if int(loop) == 0:
            print("tulip: no loop is running")
            return
        while int(loop) != 0:
            self._loop(loop.dereference(), loop, limit)
            loop = loop["reg_next"]

    def _loop(self, l, ptr, limit):
        nslots = int(l["nslots"])
        tasks = []
        for s in range(nslots):
            t = l["chunks"][s >> CHUNK_BITS][s & ((1 << CHUNK_BITS) - 1)]
            if int(t["state"]) != 0:
                tasks.append(t)
        current = int(l["current"])
        print("loop #%d: %d task(s), %d live" % (int(l["id"]), len(tasks),
                                                 int(l["live"])))
        for t in tasks:
            name = t["name"].string() or "#%d" % int(t["slot"])
            state = STATES.get(int(t["state"]), "?")
            line = "task '%s' (slot %d) %s" % (name, int(t["slot"]), state)
            what = _cstr(t["wait_what"])
            if what:
                line += ", in %s" % what
            print(line)
            if int(t.address) == current:
                th = _thread_of_loop(ptr)
                if th is None:
                    print("  (running; its loop's thread was not found)")
                    continue
                old = gdb.selected_thread()
                th.switch()
                print("  running on gdb thread %d:" % th.num)
                try:
                    for i, fr in enumerate(_frames(limit, False)):
                        print("  #%-2d %s" % (i, fr))
                finally:
                    old.switch()
                continue
            if int(t["stack"]) == 0 or not int(t["started"]):
                continue
            for i, fr in enumerate(_task_backtrace(t, limit)):
                print("  #%-2d %s" % (i, fr))


TulipTasks()
