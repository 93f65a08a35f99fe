#!/usr/bin/env python3
"""Records the QMP scenarios the fake monitor replays (*.scenario), from a real QEMU.

Usage (from the repository root; needs qemu-system-x86_64 and the tiny guest image from
`scripts/guest-images tiny`):
    test/agent/hypervisor/qemu/transcripts/record.py [SCENARIO...]
Scenarios: start, powerdown, quit, forceoff, machines, cdrom, migrate, migrate-fail,
migrate-fail-ac, mirror-fail, postcopy-recover (default: all). migrate
runs two QEMUs (a booted source with a disk overlay, a `-incoming defer` target with the
same hardware) and writes migrate-source-* and migrate-target-*; migrate-fail does the same
and kills the target in the middle of the RAM stream (migrate-fail-source-*), mirror-fail
in the middle of the disk mirror (mirror-fail-source-*); both end with the driver's unwind. Each runs a QEMU under TCG with
the same kind of command line the driver builds, sends the commands below and writes
transcripts/<scenario>-<qemu major.minor>.scenario.

Scenario format, one item a line, replayed in order by fake_qmp_server.h:
    # ...                 comment
    < {json}              the server sends this line: the greeting, an event, or a reply
                          (replies are stored without "id"; the fake adds the id of the
                          last command read, or with "for": NAME the id of the last command
                          NAME read: an out-of-band reply that overtakes in-band ones)
    > {json}              the server reads one command and fails the test unless its
                          "execute" (or "exec-oob") and "arguments" equal these ("id" is
                          ignored)
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
    def __init__(self, tmp, boot, extra=()):
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
        argv += list(extra)
        self.proc = subprocess.Popen(argv)
        for _ in range(200):
            if os.path.exists(self.qmp_path):
                break
            time.sleep(0.05)
        for _ in range(100):
            self.sock = socket.socket(socket.AF_UNIX)
            try:
                self.sock.connect(self.qmp_path)
                break
            except ConnectionRefusedError:  # the socket file exists before listen()
                self.sock.close()
                time.sleep(0.05)
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

    def execute(self, command, arguments=None, oob=False):
        cmd = {"exec-oob" if oob else "execute": command}
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
    q.execute("qmp_capabilities", {"enable": ["oob"]})
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
    q.execute("qmp_capabilities", {"enable": ["oob"]})
    q.execute("query-status")
    q.execute("system_powerdown")
    q.wait_event("SHUTDOWN")
    q.wait_hangup()


def quit_(q):
    q.greeting()
    q.execute("qmp_capabilities", {"enable": ["oob"]})
    q.execute("quit")
    q.wait_hangup()


def forceoff(q):
    """What the driver sends to start a VM, then to force it off (quit)."""
    q.greeting()
    q.execute("qmp_capabilities", {"enable": ["oob"]})
    q.execute("query-status")
    q.execute("quit")
    q.wait_hangup()


def machines(q):
    q.greeting()
    q.execute("qmp_capabilities", {"enable": ["oob"]})
    q.execute("query-machines")
    q.execute("quit")
    q.wait_hangup()


def overlay(tmp, name, data):
    """A qcow2 overlay of the tiny base image; `data`: write 4 MiB of a pattern into it."""
    path = os.path.join(tmp, name)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", manifest()["TINY_BASE"],
                    "-F", "qcow2", path], check=True)
    if data:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 4M", path],
                       check=True, stdout=subprocess.DEVNULL)
    return ["-blockdev", "driver=file,node-name=file0,filename=" + path,
            "-blockdev", "driver=qcow2,node-name=disk0,file=file0",
            "-device", "virtio-blk-pci,drive=disk0,id=virtio-disk0"]


def migration_pair(tmp):
    os.makedirs(os.path.join(tmp, "s"))
    os.makedirs(os.path.join(tmp, "t"))
    src = Qemu(os.path.join(tmp, "s"), True, overlay(tmp, "src.qcow2", True))
    dst = Qemu(os.path.join(tmp, "t"), True,
               overlay(tmp, "dst.qcow2", False) + ["-S", "-incoming", "defer"])
    src.wait_serial("STRATA-READY")
    return src, dst


def migrate_setup(src, dst, bandwidth, auto_converge=False):
    """What the driver sends: target prepare, source mirror until READY, then RAM."""
    dst.greeting()
    dst.execute("qmp_capabilities", {"enable": ["oob"]})
    dst.execute("migrate-set-capabilities",
                {"capabilities": [{"capability": "events", "state": True},
                                  {"capability": "dirty-bitmaps", "state": True}]})
    dst.execute("nbd-server-start",
                {"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": "10899"}}})
    dst.execute("block-export-add", {"type": "nbd", "id": "mig-disk0", "node-name": "disk0",
                                     "name": "disk0", "writable": True})
    dst.execute("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
    info = dst.execute("query-migrate")
    port = info["return"]["socket-address"][0]["port"]
    src.greeting()
    src.execute("qmp_capabilities", {"enable": ["oob"]})
    src.execute("query-status")
    src.execute("migrate-set-capabilities",
                {"capabilities": [{"capability": "events", "state": True},
                                  {"capability": "dirty-bitmaps", "state": True},
                                  {"capability": "auto-converge", "state": auto_converge},
                                  {"capability": "postcopy-ram", "state": False}]})
    src.execute("blockdev-add", {"driver": "nbd", "node-name": "mig-disk0",
                                 "server": {"type": "inet", "host": "127.0.0.1",
                                            "port": "10899"},
                                 "export": "disk0"})
    src.execute("blockdev-mirror", {"job-id": "mig-disk0", "device": "disk0",
                                    "target": "mig-disk0", "sync": "top"})
    src.wait_event("BLOCK_JOB_READY")
    src.execute("query-block-jobs")
    # As the driver sends for a plain migration: "" resets an earlier TLS attempt.
    src.execute("migrate-set-parameters", {"downtime-limit": 100, "max-bandwidth": bandwidth,
                                           "tls-creds": "", "tls-hostname": ""})
    src.execute("migrate", {"uri": "tcp:127.0.0.1:" + port})
    return port


def migrate(tmp):
    src, dst = migration_pair(tmp)
    migrate_setup(src, dst, 1 << 30)
    src.execute("query-migrate")
    src.wait_event("MIGRATION")  # active
    while True:
        src.wait_event("MIGRATION")
        if json.loads(src.lines[-1][2:])["data"]["status"] in ("completed", "failed"):
            break
    src.execute("query-migrate")
    src.execute("block-job-cancel", {"device": "mig-disk0", "force": False})
    src.wait_event("BLOCK_JOB_COMPLETED")
    src.execute("query-status")
    src.execute("quit")
    src.wait_hangup()
    dst.wait_event("MIGRATION")
    while json.loads(dst.lines[-1][2:])["data"]["status"] not in ("completed", "failed"):
        dst.wait_event("MIGRATION")
    dst.execute("query-status")
    dst.execute("nbd-server-stop")
    dst.execute("cont")
    dst.execute("query-status")
    dst.execute("quit")
    dst.wait_hangup()
    return {"migrate-source": src, "migrate-target": dst}


def unwind(src):
    """What the driver sends after a failure: forced cancels, NBD node removal, status."""
    src.execute("block-job-cancel", {"device": "mig-disk0", "force": True})
    time.sleep(0.5)
    src.execute("query-block-jobs")
    src.execute("blockdev-del", {"node-name": "mig-disk0"})
    src.execute("query-status")
    src.execute("quit")
    src.wait_hangup()


def migrate_fail(tmp, auto_converge=False):
    """The target QEMU dies while the source streams RAM (slowly: 1 MiB/s)."""
    src, dst = migration_pair(tmp)
    migrate_setup(src, dst, 1 << 20, auto_converge)
    src.wait_event("MIGRATION")  # setup
    src.execute("query-migrate")
    dst.proc.kill()
    dst.proc.wait()
    while json.loads(src.lines[-1][2:]).get("data", {}).get("status") not in ("failed",):
        src.wait_event("MIGRATION")
    src.execute("query-migrate")
    unwind(src)
    return {"migrate-fail-ac-source" if auto_converge else "migrate-fail-source": src}


def mirror_fail(tmp):
    """The target QEMU dies while the source mirrors a disk (64 MiB): the mirror fails."""
    auto_converge = False
    os.makedirs(os.path.join(tmp, "s"))
    os.makedirs(os.path.join(tmp, "t"))
    disk = overlay(tmp, "src.qcow2", False)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xcd 0 60M",
                    os.path.join(tmp, "src.qcow2")], check=True, stdout=subprocess.DEVNULL)
    src = Qemu(os.path.join(tmp, "s"), True, disk)
    dst = Qemu(os.path.join(tmp, "t"), True,
               overlay(tmp, "dst.qcow2", False) + ["-S", "-incoming", "defer"])
    src.wait_serial("STRATA-READY")
    dst.greeting()
    dst.execute("qmp_capabilities", {"enable": ["oob"]})
    dst.execute("nbd-server-start",
                {"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": "10899"}}})
    dst.execute("block-export-add", {"type": "nbd", "id": "mig-disk0", "node-name": "disk0",
                                     "name": "disk0", "writable": True})
    src.greeting()
    src.execute("qmp_capabilities", {"enable": ["oob"]})
    src.execute("query-status")
    src.execute("migrate-set-capabilities",
                {"capabilities": [{"capability": "events", "state": True},
                                  {"capability": "dirty-bitmaps", "state": True},
                                  {"capability": "auto-converge", "state": auto_converge},
                                  {"capability": "postcopy-ram", "state": False}]})
    src.execute("blockdev-add", {"driver": "nbd", "node-name": "mig-disk0",
                                 "server": {"type": "inet", "host": "127.0.0.1",
                                            "port": "10899"},
                                 "export": "disk0"})
    src.execute("blockdev-mirror", {"job-id": "mig-disk0", "device": "disk0",
                                    "target": "mig-disk0", "sync": "top"})
    dst.proc.kill()
    dst.proc.wait()
    src.wait_event("BLOCK_JOB_COMPLETED")
    src.execute("query-block-jobs")
    unwind(src)
    return {"mirror-fail-source": src}


def status_of(q):
    return json.loads(q.lines[-1][2:]).get("data", {}).get("status")


def wait_status(q, status):
    while status_of(q) != status:
        q.wait_event("MIGRATION")


def postcopy_recover(tmp):
    """Post-copy recovery (as libvirt's --postcopy-resume): a diskless pair switches over in
    post-copy (the source paused for the copy, as the driver does on TCG, and its post-copy
    bandwidth capped so the stream is still running), the stream is broken with
    migrate-pause on the source, the target listens again with migrate-recover (asked twice:
    QEMU 7.2 accepts it again and replaces its listener), the source resumes with migrate + resume, the cap is lifted and
    both complete. Also: migrate-pause and migrate-recover outside post-copy, refused. Both
    go out-of-band (exec-oob), as the driver sends them."""
    os.makedirs(os.path.join(tmp, "s"))
    os.makedirs(os.path.join(tmp, "t"))
    src = Qemu(os.path.join(tmp, "s"), True)
    dst = Qemu(os.path.join(tmp, "t"), True, ["-S", "-incoming", "defer"])
    src.wait_serial("STRATA-READY")
    caps = [{"capability": "events", "state": True},
            {"capability": "postcopy-ram", "state": True}]
    dst.greeting()
    dst.execute("qmp_capabilities", {"enable": ["oob"]})
    dst.execute("migrate-set-capabilities", {"capabilities": caps})
    dst.execute("migrate-recover", {"uri": "tcp:127.0.0.1:10901"}, oob=True)  # refused: not paused
    dst.execute("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
    port = dst.execute("query-migrate")["return"]["socket-address"][0]["port"]
    src.greeting()
    src.execute("qmp_capabilities", {"enable": ["oob"]})
    src.execute("migrate-set-capabilities", {"capabilities": caps})
    src.execute("migrate-pause", oob=True)  # refused: no migration
    src.execute("migrate-set-parameters", {"max-postcopy-bandwidth": 1 << 20})
    src.execute("stop")
    src.execute("migrate", {"uri": "tcp:127.0.0.1:" + port})
    src.wait_event("MIGRATION")  # setup
    wait_status(src, "active")
    src.execute("migrate-start-postcopy")
    wait_status(src, "postcopy-active")
    wait_status(dst, "postcopy-active")
    dst.execute("cont")
    src.execute("migrate-pause", oob=True)
    wait_status(src, "postcopy-paused")
    src.execute("query-migrate")
    wait_status(dst, "postcopy-paused")
    dst.execute("query-migrate")
    dst.execute("migrate-recover", {"uri": "tcp:127.0.0.1:10900"}, oob=True)
    dst.execute("migrate-recover", {"uri": "tcp:127.0.0.1:10900"}, oob=True)  # asked again
    dst.execute("query-migrate")
    src.execute("migrate", {"uri": "tcp:127.0.0.1:10900", "resume": True})
    wait_status(src, "postcopy-active")
    src.execute("query-migrate")
    src.execute("migrate-set-parameters", {"max-postcopy-bandwidth": 0})
    wait_status(src, "completed")
    src.execute("query-migrate")
    src.execute("quit")
    src.wait_hangup()
    wait_status(dst, "completed")
    dst.execute("query-status")
    dst.execute("quit")
    dst.wait_hangup()
    return {"postcopy-recover-source": src, "postcopy-recover-target": dst}


CDROM_ISO = "/tmp/strata-record-cdrom.iso"  # a fixed path: the commands name it


def cdrom(tmp):
    """The CD-ROM's medium on an empty hardware-profile slot (ide-cd cdrom0 on ide.2):
    the driver's change (forced eject, blockdev-change-medium) twice, eject, query-block
    after each, and both commands on a device QEMU lacks. Needs xorriso."""
    root = os.path.join(tmp, "iso-root")
    os.makedirs(root)
    with open(os.path.join(root, "hello.txt"), "w") as f:
        f.write("hello\n")
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", CDROM_ISO, root], check=True)
    q = Qemu(tmp, False, ["-device", "ide-cd,bus=ide.2,id=cdrom0"])
    change = {"id": "cdrom0", "filename": CDROM_ISO, "format": "raw",
              "read-only-mode": "read-only"}
    try:
        q.greeting()
        q.execute("qmp_capabilities", {"enable": ["oob"]})
        # The driver's change: a forced eject first (a guest's tray lock would make
        # blockdev-change-medium fail), then the change; on an empty drive and on a full one.
        for _ in range(2):
            q.execute("eject", {"id": "cdrom0", "force": True})
            q.execute("blockdev-change-medium", change)
            q.execute("query-block")
        q.execute("eject", {"id": "cdrom0", "force": True})
        q.execute("query-block")
        q.execute("eject", {"id": "cdrom9", "force": True})
        q.execute("blockdev-change-medium", dict(change, id="cdrom9"))
        q.execute("quit")
        q.wait_hangup()
    finally:
        os.unlink(CDROM_ISO)
    return {"cdrom": q}


PAIRS = {"cdrom": cdrom, "migrate": migrate, "migrate-fail": migrate_fail,
         # The same with auto-converge asked for (the driver's --auto-converge).
         "migrate-fail-ac": lambda tmp: migrate_fail(tmp, True),
         "mirror-fail": mirror_fail, "postcopy-recover": postcopy_recover}

SCENARIOS = {"start": (start, True), "powerdown": (powerdown, True), "quit": (quit_, False),
             "forceoff": (forceoff, True),
             "machines": (machines, False)}


def main():
    names = sys.argv[1:] or list(SCENARIOS) + list(PAIRS)
    for name in names:
        if name in PAIRS:
            with tempfile.TemporaryDirectory() as tmp:
                for out_name, q in PAIRS[name](tmp).items():
                    write(out_name, q)
                    if q.proc.poll() is None:
                        q.proc.kill()
            continue
        fn, boot = SCENARIOS[name]
        with tempfile.TemporaryDirectory() as tmp:
            q = Qemu(tmp, boot)
            try:
                fn(q)
            finally:
                if q.proc.poll() is None:
                    q.proc.kill()
                    q.proc.wait()
            write(name, q)


def write(name, q):
    out = os.path.join(HERE, "%s-%s.scenario" % (name, q.version()))
    with open(out, "w") as f:
        f.write("# Recorded by record.py (scenario %s) from QEMU %s; do not edit.\n"
                % (name, q.version()))
        f.write("\n".join(q.lines) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
