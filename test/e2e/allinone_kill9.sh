#!/usr/bin/env bash
# All-in-one kill -9 e2e (issue 9, "One agent per host, whatever crashed"): stratad
# --all-in-one is killed with SIGKILL at each point of its life, and started again:
#   P0 just after launch (its local agent is starting)   P1 up, no VM yet
#   P2 right after a VM create was acknowledged           P3 with two VMs running
#   P4 again, during the restart's adoption of the agent
# After each restart: exactly one strata-agent serves the data dir, the host is up, and
# once VMs run: none restarted (QEMU pid unchanged), none duplicated (one QEMU per VM, one
# record per VM), none ever reported crashed. Then: a second agent started by hand on the
# same state folder is refused (exit code 7, names the holder) and breaks nothing, and so is
# a second stratad on the same data folder (exit code 7, before it touches the agent); a
# normal stop (SIGTERM) of the stratad that adopted the agent stops that agent too, VMs
# keep running, and the next stratad starts a fresh agent that re-attaches them.
# Needs QEMU and the tiny guest images; otherwise exits 77.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_tools curl jq qemu-system-x86_64 qemu-img pgrep
need_binaries
need_tiny_images

PORT=${E2E_AIO_PORT:-$(free_port)}
WORK=$(mktemp -d /tmp/strata-e2e-aio.XXXXXX)
D=$WORK/d
STATE=$D/agent
SOCK=$STATE/agent.sock
MGR_PID=
HOST=aio-host
T0=$(date +%s)
agent_ctl() { "$STRATA_AGENT" ctl --socket "$SOCK" --timeout 20 "$@"; }
aio_args=(--all-in-one --accel tcg --host-name "$HOST" --heartbeat-ms 300 --miss-threshold 4)

# pids of the strata-agent processes serving $STATE (zombies have no cmdline: not counted)
agent_pids() {
  local p
  for p in $(pgrep -x strata-agent 2>/dev/null || true); do
    if tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -qx -- "$STATE"; then echo "$p"; fi
  done
}

cleanup() {
  local rc=$?
  set +e
  e2e_logs_on_failure $rc 30 stratad="$D/stratad.log" agent="$D/agent.log"
  e2e_remove_agent_vms "$SOCK" undefine
  [ -n "$MGR_PID" ] && kill "$MGR_PID" 2>/dev/null
  wait 2>/dev/null
  for p in $(agent_pids); do kill "$p" 2>/dev/null; done  # only agents of this test's folder
  e2e_finish $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

host_up() { [ "$(api GET "/api/v1/hosts/$HOST" | jq -r .state)" = up ]; }
vm_running() { [ "$(api GET "/api/v1/vms/$1" | jq -r .status.state)" = running ]; }

kill9() {
  kill -9 "$MGR_PID" 2>/dev/null || true
  wait "$MGR_PID" 2>/dev/null || true
  MGR_PID=
}

# restart WHY: starts stratad again and checks the one-agent rule and the host.
restart() {
  start_stratad "$D" "127.0.0.1:$PORT" "${aio_args[@]}"
  wait_for 30 "host up" host_up || fail "$1: host not up after restart: $(api GET /api/v1/hosts)"
  local n
  n=$(agent_pids | wc -l)
  [ "$n" = 1 ] || fail "$1: $n strata-agent processes serve $STATE: $(agent_pids | tr '\n' ' ')"
  log "$1: restarted; one agent (pid $(agent_pids)), host up"
}

# The VMs' QEMU pids as "name pid" lines, from the agent.
qemu_pids() { agent_ctl -o json vm list | jq -r '.vms[] | "\(.spec.name) \(.pid // 0)"' | sort; }

# check_vms WHY EXPECTED_PIDS: both VMs run, with the same QEMU, one QEMU each, one record each.
check_vms() {
  local why=$1 want=$2 name pid uuid n p
  for name in v1 v2; do
    wait_for 30 "$name running" vm_running "$name" ||
      fail "$why: $name is $(api GET "/api/v1/vms/$name" | jq -c .status)"
  done
  [ "$(qemu_pids)" = "$want" ] || fail "$why: QEMU pids changed: before [$want] now [$(qemu_pids)]"
  for name in v1 v2; do
    uuid=$(agent_ctl -o json vm list | jq -r --arg n "$name" '.vms[] | select(.spec.name == $n) | .spec.uuid')
    n=0
    for p in $(pgrep -f -- "$uuid" || true); do
      case $(cat "/proc/$p/comm" 2>/dev/null) in qemu-system*) n=$((n + 1)) ;; esac
    done
    [ "$n" = 1 ] || fail "$why: $n QEMU processes for $name"
  done
  n=$(api GET '/api/v1/vms?limit=100' | jq '[.vms[] | select(.name == "v1" or .name == "v2")] | length')
  [ "$n" = 2 ] || fail "$why: $n VM records for v1/v2"
  [ "$(agent_ctl -o json vm list | jq '.vms | length')" = 2 ] || fail "$why: the agent lists $(agent_ctl -o json vm list | jq -c '[.vms[].spec.name]')"
  if api GET '/api/v1/events?limit=1000' | grep -q crashed; then
    fail "$why: an event says crashed: $(api GET '/api/v1/events?limit=1000' | jq -c '[.events[]? | select(tostring | test("crashed"))]')"
  fi
  if grep -q "state=crashed\|ended while the agent was down" "$D/agent.log"; then
    fail "$why: the agent declared a VM ended: $(grep "crashed\|ended while" "$D/agent.log" | tail -3)"
  fi
  log "$why: v1 v2 running, QEMU pids unchanged ($(tr '\n' ' ' <<<"$want")), no duplicate, nothing crashed"
}

# ---- P0: killed while its local agent starts
mkdir -p "$D"
"$STRATAD" --data-dir "$D" --listen "127.0.0.1:$PORT" "${aio_args[@]}" >>"$D/stratad.log" 2>&1 &
MGR_PID=$!
for ((i = 0; i < 40; i++)); do [ -n "$(agent_pids)" ] && break; sleep 0.05; done
kill9
log "P0: killed stratad while its agent started (agents: $(agent_pids | tr '\n' ' '))"
restart P0

# ---- P1: up, no VM yet
kill9
restart P1

# ---- P2: right after a create was acknowledged
import_catalog_images || fail "image import"
api POST /api/v1/vms "$(vm_body v1 true)" >/dev/null
case $(last_status) in 20?) ;; *) fail "create v1: HTTP $(last_status)" ;; esac
kill9
restart P2
wait_for 40 "v1 running" vm_running v1 || fail "P2: v1 is $(api GET /api/v1/vms/v1 | jq -c .status)"

# ---- P3: VMs running
api POST /api/v1/vms "$(vm_body v2 true)" >/dev/null
case $(last_status) in 20?) ;; *) fail "create v2: HTTP $(last_status)" ;; esac
wait_for 40 "v2 running" vm_running v2 || fail "v2 is $(api GET /api/v1/vms/v2 | jq -c .status)"
PIDS=$(qemu_pids)
check_vms "before kills" "$PIDS"
kill9
restart P3
check_vms P3 "$PIDS"

# ---- P4: killed again while the new stratad adopts the agent
kill9
"$STRATAD" --data-dir "$D" --listen "127.0.0.1:$PORT" "${aio_args[@]}" >>"$D/stratad.log" 2>&1 &
MGR_PID=$!
sleep 0.3
kill9
restart P4
check_vms P4 "$PIDS"

# ---- a second agent on the same folder is refused and breaks nothing
holder=$(agent_pids)
set +e
timeout 30 "$STRATA_AGENT" serve --state-dir "$STATE" --images "$D/images" --listen "unix:$SOCK" \
  --accel tcg >"$WORK/second.log" 2>&1
rc=$?
set -e
[ "$rc" = 7 ] || fail "a second agent on $STATE exited $rc (want 7): $(tail -3 "$WORK/second.log")"
grep -q "locked by process $holder" "$WORK/second.log" ||
  fail "the refusal does not name the holder $holder: $(tail -3 "$WORK/second.log")"
[ -S "$SOCK" ] || fail "the refused agent removed $SOCK"
sleep 1
host_up || fail "host not up after the refused second agent"
check_vms "second agent refused" "$PIDS"

# ---- a second stratad on the same data folder is refused before it touches the agent
# (it used to adopt the running agent, fail to listen on the busy port and stop that agent
# on its way out).
set +e
timeout 30 "$STRATAD" --data-dir "$D" --listen "127.0.0.1:0" "${aio_args[@]}" >"$WORK/second-mgr.log" 2>&1
rc=$?
set -e
[ "$rc" = 7 ] || fail "a second stratad on $D exited $rc (want 7): $(tail -3 "$WORK/second-mgr.log")"
grep -q "another stratad already uses" "$WORK/second-mgr.log" ||
  fail "the refusal does not say why: $(tail -3 "$WORK/second-mgr.log")"
[ "$(agent_pids)" = "$holder" ] || fail "the refused stratad changed the agent: $(agent_pids) (was $holder)"
host_up || fail "host not up after the refused second stratad"
check_vms "second stratad refused" "$PIDS"

# ---- normal stop of the adopting stratad: the agent stops too, VMs keep running
kill -TERM "$MGR_PID"
wait "$MGR_PID" 2>/dev/null || true
MGR_PID=
[ -z "$(agent_pids)" ] || fail "stratad stopped normally but its adopted agent still runs: $(agent_pids)"
while read -r name pid; do
  kill -0 "$pid" 2>/dev/null || fail "$name's QEMU ($pid) did not survive the agent's stop"
done <<<"$PIDS"
restart "after a normal stop"
check_vms "after a normal stop" "$PIDS"
log "PASS all-in-one kill -9: one agent, no VM restarted, duplicated or crashed ($(($(date +%s) - T0)) s)"
