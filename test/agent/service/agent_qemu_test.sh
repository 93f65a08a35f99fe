#!/usr/bin/env bash
# Integration test (label qemu): the real `strata-agent serve` with the real QEMU driver.
# Defines and starts the tiny guest through `strata-agent ctl`, waits for STRATA-READY on
# its console, kill -9s the agent, restarts it, and checks the VM kept running with the same
# QEMU pid and a working console; also over TCP. Exit 77 = skipped (reason printed).
#   agent_qemu_test.sh <strata-agent binary> <repo root>
set -euo pipefail
AGENT=$1
REPO=$2
IMAGES=${STRATA_IMAGES:-$REPO/.cache/images}

skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL: $*"; [ -n "${T:-}" ] && tail -n 30 "$T/agent.log" 2>/dev/null; exit 1; }

[ -f "$IMAGES/manifest.env" ] || skip "no guest images in $IMAGES (run scripts/guest-images tiny)"
# shellcheck disable=SC1091
. "$IMAGES/manifest.env"
for f in "$TINY_KERNEL" "$TINY_INITRD" "$TINY_BASE"; do
  [ -f "$f" ] || skip "missing $f (run scripts/guest-images tiny)"
done
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
if "$AGENT" shim 2>&1 | grep -q "built without the QEMU driver"; then
  skip "strata-agent was built without the QEMU driver"
fi

T=$(mktemp -d /tmp/strata-agent-it.XXXXXX)
chmod 711 "$T"  # QEMU runs as strata-qemu: it must pass through to the VM folders
STATE=$T/state
SOCK=$STATE/agent.sock
PORT=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768..): no outgoing connection takes it
AGENT_PID=""
QEMU_PID=""
ctl() { "$AGENT" ctl --socket "$SOCK" --timeout 30 "$@"; }

cleanup() {
  set +e
  if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
    ctl vm force-off it1 >/dev/null 2>&1
    kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
  fi
  # Never leave a guest behind, whatever failed.
  [ -n "$QEMU_PID" ] && kill -9 "$QEMU_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

start_agent() {
  "$AGENT" serve --state-dir "$STATE" --accel tcg --listen-tcp "127.0.0.1:$PORT" --insecure \
    --log-level debug >>"$T/agent.log" 2>&1 &
  AGENT_PID=$!
  for _ in $(seq 1 300); do
    ctl health >/dev/null 2>&1 && return 0
    kill -0 "$AGENT_PID" 2>/dev/null || fail "agent exited during startup"
    sleep 0.2
  done
  fail "agent did not answer Health within 60 s"
}

# wait_console PATTERN: polls the console tail (up to 90 s) for an extended regex.
wait_console() {
  for _ in $(seq 1 450); do
    out=$(ctl vm console it1 --bytes 65536 | tr -d '\r') || true
    grep -Eq "$1" <<<"$out" && return 0
    sleep 0.2
  done
  ctl vm console it1 --bytes 2000 || true
  fail "console never showed /$1/"
}

field() { ctl vm show it1 | awk -v k="$1:" '$1 == k { print $2 }'; }

"$AGENT" image import tiny-kernel "$TINY_KERNEL" --images "$STATE/images" >/dev/null
"$AGENT" image import tiny-initrd "$TINY_INITRD" --images "$STATE/images" >/dev/null
"$AGENT" image import tiny-base "$TINY_BASE" --images "$STATE/images" >/dev/null

start_agent
out=$(ctl image list) || fail "image list failed"
grep -q tiny-base <<<"$out" || fail "image list lacks tiny-base"
ctl vm define --name it1 --memory 128 --kernel tiny-kernel --initrd tiny-initrd \
  --cmdline "$TINY_CMDLINE" --disk name=root,base=tiny-base --nic user --start >/dev/null \
  || fail "define --start failed"
QEMU_PID=$(field pid)
[ "$(field state)" = running ] || fail "state after start: $(field state)"
[ -n "$QEMU_PID" ] && [ "$QEMU_PID" -gt 0 ] || fail "no QEMU pid"
wait_console '^STRATA-READY$'
echo "guest ready, qemu pid $QEMU_PID"
# strata-agent serve's default: QEMU as strata-qemu (when root and scripts/setup made the
# user), always under its seccomp filter (mode 2).
grep -Eq '^Seccomp:[[:space:]]+2$' "/proc/$QEMU_PID/status" || fail "QEMU not under seccomp"
if [ "$(id -u)" = 0 ] && qemu_uid=$(id -u strata-qemu 2>/dev/null); then
  grep -Eq "^Uid:[[:space:]]+$qemu_uid[[:space:]]+$qemu_uid[[:space:]]+$qemu_uid[[:space:]]+$qemu_uid$" \
    "/proc/$QEMU_PID/status" || fail "QEMU does not run as strata-qemu: $(grep Uid "/proc/$QEMU_PID/status")"
  echo "qemu runs as strata-qemu (uid $qemu_uid) under seccomp"
fi

# Start again is a no-op; a repeated request id returns the original answer.
ctl vm start it1 >/dev/null || fail "start on running VM failed"
ctl --request-id it-undef-missing vm undefine nosuchvm >/dev/null 2>&1 && fail "undefine missing succeeded"
rc=0; ctl --request-id it-undef-missing vm undefine nosuchvm >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "repeated undefine of a missing VM: exit $rc, want 3 (not found)"

# Kill the agent hard: the VM must not notice.
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=""
kill -0 "$QEMU_PID" 2>/dev/null || fail "QEMU died with the agent"

start_agent
[ "$(field state)" = running ] || fail "state after agent restart: $(field state)"
[ "$(field pid)" = "$QEMU_PID" ] || fail "pid after restart $(field pid), want $QEMU_PID"
# The console still works both ways: a shell command's output appears.
ctl vm console it1 --write 'echo strata-$((6*7))-ok' || fail "console write failed"
wait_console '^strata-42-ok$'
echo "after agent kill -9 + restart: same pid $QEMU_PID, console works"

# Over TCP too (output captured first: grep -q closing the pipe early would trip pipefail).
out=$("$AGENT" ctl --address "127.0.0.1:$PORT" vm list) || fail "vm list over TCP failed"
grep -Eq '^it1 +running' <<<"$out" || fail "vm list over TCP: $out"
out=$("$AGENT" ctl --address "127.0.0.1:$PORT" -o json inventory) || fail "inventory over TCP failed"
grep -q '"cpu"' <<<"$out" || fail "inventory over TCP lacks cpu"
out=$("$AGENT" ctl --address "127.0.0.1:$PORT" -o json metrics) || fail "metrics over TCP failed"
grep -q '"rss_bytes"' <<<"$out" || fail "metrics lack the VM's stats: $out"

# Lifecycle through the restarted agent, watched by an event stream.
ctl events --vm it1 --current >"$T/events" 2>&1 &
EVENTS_PID=$!
# The stream is subscribed once it has printed the current state.
for _ in $(seq 1 100); do grep -q ' current' "$T/events" && break; sleep 0.1; done
grep -q ' current' "$T/events" || fail "event stream did not start: $(cat "$T/events")"
ctl vm pause it1 >/dev/null || fail "pause failed"
[ "$(field state)" = paused ] || fail "state after pause: $(field state)"
ctl vm pause it1 >/dev/null || fail "pause of a paused VM is not OK"
ctl vm resume it1 >/dev/null || fail "resume failed"
[ "$(field state)" = running ] || fail "state after resume: $(field state)"
ctl vm shutdown it1 --timeout 60 >/dev/null || fail "shutdown failed"
[ "$(field state)" = stopped ] || fail "state after ACPI shutdown: $(field state)"
kill -0 "$QEMU_PID" 2>/dev/null && fail "QEMU still alive after shutdown"
kill "$EVENTS_PID"; wait "$EVENTS_PID" 2>/dev/null || true
grep -q ' paused ' "$T/events" || fail "event stream lacks paused: $(cat "$T/events")"
grep -q ' stopped ' "$T/events" || fail "event stream lacks stopped: $(cat "$T/events")"
echo "pause/resume/shutdown seen on the event stream"

ctl vm start it1 >/dev/null || fail "restart of a stopped VM failed"
[ "$(field pid)" != "$QEMU_PID" ] || fail "restarted VM kept the old pid"
QEMU_PID=$(field pid)
ctl vm force-off it1 >/dev/null || fail "force-off failed"
[ "$(field state)" != running ] || fail "still running after force-off"
kill -0 "$QEMU_PID" 2>/dev/null && fail "QEMU still alive after force-off"
QEMU_PID=""
ctl vm undefine it1 >/dev/null || fail "undefine failed"
rc=0; ctl vm show it1 >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "show after undefine: exit $rc, want 3"

# SIGTERM: clean exit.
kill -TERM "$AGENT_PID"
rc=0; wait "$AGENT_PID" || rc=$?
AGENT_PID=""
[ "$rc" = 0 ] || fail "agent exit status on SIGTERM: $rc"
echo "PASS"
