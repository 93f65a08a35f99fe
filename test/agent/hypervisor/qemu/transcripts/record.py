#!/usr/bin/env python3
"""Records the QMP scenarios the fake monitor replays (*.scenario), from a real QEMU.

Usage (from the repository root; needs qemu-system-x86_64 and the tiny guest image from
`scripts/guest-images tiny`):
    test/agent/hypervisor/qemu/transcripts/record.py [SCENARIO...]
Scenarios: start, powerdown, quit, forceoff, machines (default: all). Each runs a QEMU under TCG with
the same kind of command line the driver builds, sends the commands below and writes
transcripts/<scenario>-<qemu major.minor>.scenario.

Scenario format, one item a line, replayed in order by fake_qmp_server.h:
    # ...                 comment
    < {json}              the server sends this line: the greeting, an event, or a reply
                          (replies are stored without "id"; the fake adds the command's id)
    > {json}              the server reads one command and fails the test unless its
                          "execute" and "arguments" equal these ("id" is ignored)
    ! hangup              the server closes the connection (QEMU gone)
    ! stall               the server keeps the connection open but sends nothing more
    ! client-closes       the server waits for the client to close (an agent stopping);
                          the following steps are served on the next connection
Events are stored where QEMU sent them (before or after the reply they belong with).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def manifest():
    path = os.environ.get("STRATA_IMAGES", os.path.join(HERE, "../../../../../.cache/images"))
    m = {}
    with open(os.path.join(path, "manifest.env")) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, v = line.strip().split("=", 1)
                m[k] = v.strip('"')
    return m


class Qemu:
    def __init__(self, tmp, boot):
        self.qmp_path = os.path.join(tmp, "qmp.sock")
        self.serial = os.path.join(tmp, "serial.log")
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-machine", "type=q35",
                "-nodefaults", "-no-user-config", "-display", "none", "-smp", "1", "-m", "256",
                "-chardev", "socket,id=qmp,path=%s,server=on,wait=off" % self.qmp_path,
                "-mon", "chardev=qmp,mode=control", "-serial", "file:" + self.serial,
                "-device", "pvpanic"]
        if boot:
            m = manifest()
            argv += ["-kernel", m["TINY_KERNEL"], "-initrd", m["TINY_INITRD"],
                     "-append", m["TINY_CMDLINE"]]
        self.proc = subprocess.Popen(argv)
        for _ in range(200):
            if os.path.exists(self.qmp_path):
                break
            time.sleep(0.05)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.qmp_path)
        self.buf = b""
        self.lines = []
        self.next_id = 1

    def read_line(self, timeout=120):
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def record_in(self, msg):
        msg = dict(msg)
        msg.pop("id", None)
        self.lines.append("< " + json.dumps(msg))

    def greeting(self):
        self.record_in(self.read_line())

    def execute(self, command, arguments=None):
        cmd = {"execute": command}
        if arguments is not None:
            cmd["arguments"] = arguments
        self.lines.append("> " + json.dumps(cmd))
        cmd["id"] = self.next_id
        self.next_id += 1
        self.sock.sendall((json.dumps(cmd) + "\n").encode())
        while True:
            msg = self.read_line()
            if msg is None:
                self.lines.append("! hangup")
                return None
            self.record_in(msg)
            if msg.get("id") == cmd["id"]:
                return msg

    def wait_event(self, name):
        while True:
            msg = self.read_line()
            if msg is None:
                self.lines.append("! hangup")
                return
            self.record_in(msg)
            if msg.get("event") == name:
                return

    def wait_hangup(self):
        while self.read_line() is not None:
            pass
        self.lines.append("! hangup")
        self.proc.wait(30)

    def wait_serial(self, text, timeout=180):
        end = time.time() + timeout
        while time.time() < end:
            if os.path.exists(self.serial) and text in open(self.serial, errors="replace").read():
                return
            time.sleep(0.2)
        raise SystemExit("guest did not print " + text)

    def version(self):
        g = json.loads(self.lines[0][2:])["QMP"]["version"]["qemu"]
        return "%d.%d" % (g["major"], g["minor"])


def start(q):
    """What the driver sends when it starts a VM, plus every query it knows, then quit."""
    q.greeting()
    q.execute("qmp_capabilities")
    q.execute("query-status")
    q.execute("query-cpus-fast")
    q.execute("query-memory-size-summary")
    q.execute("query-balloon")
    q.execute("query-blockstats")
    q.execute("stop")
    q.execute("query-status")
    q.execute("cont")
    q.execute("system_reset")
    q.execute("quit")
    q.wait_hangup()


def powerdown(q):
    """A booted guest asked to power down: POWERDOWN, then the guest's SHUTDOWN, then exit."""
    q.wait_serial("STRATA-READY")
    time.sleep(3)  # acpid starts in the background just before STRATA-READY
    q.greeting()
    q.execute("qmp_capabilities")
    q.execute("query-status")
    q.execute("system_powerdown")
    q.wait_event("SHUTDOWN")
    q.wait_hangup()


def quit_(q):
    q.greeting()
    q.execute("qmp_capabilities")
    q.execute("quit")
    q.wait_hangup()


def forceoff(q):
    """What the driver sends to start a VM, then to force it off (quit)."""
    q.greeting()
    q.execute("qmp_capabilities")
    q.execute("query-status")
    q.execute("quit")
    q.wait_hangup()


def machines(q):
    q.greeting()
    q.execute("qmp_capabilities")
    q.execute("query-machines")
    q.execute("quit")
    q.wait_hangup()


SCENARIOS = {"start": (start, True), "powerdown": (powerdown, True), "quit": (quit_, False),
             "forceoff": (forceoff, True),
             "machines": (machines, False)}


def main():
    names = sys.argv[1:] or list(SCENARIOS)
    for name in names:
        fn, boot = SCENARIOS[name]
        with tempfile.TemporaryDirectory() as tmp:
            q = Qemu(tmp, boot)
            try:
                fn(q)
            finally:
                if q.proc.poll() is None:
                    q.proc.kill()
                    q.proc.wait()
            out = os.path.join(HERE, "%s-%s.scenario" % (name, q.version()))
            with open(out, "w") as f:
                f.write("# Recorded by record.py (scenario %s) from QEMU %s; do not edit.\n"
                        % (name, q.version()))
                f.write("\n".join(q.lines) + "\n")
            print("wrote", out)


if __name__ == "__main__":
    main()
