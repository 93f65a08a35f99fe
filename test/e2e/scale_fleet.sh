#!/usr/bin/env bash
# Scale test (label `scale`; docs/internals/fleet.md): SCALE_HOSTS (1 000) simulated hosts
# and SCALE_VMS (20 000) VMs through the real manager on SQLite, every host enrolled with its
# own join token and dialled with mutual TLS (`strata-agent sim`, one process).
#   1. The create storm through the REST API (bench/fleet/creates.py, 16 in flight), and a
#      kill -9 of stratad once half of the creates were acknowledged; stratad restarted on
#      the same data, the storm resumed for the names never acknowledged (a 409 is a create
#      that committed but whose answer was lost).
#   2. Accounting: the API counts exactly SCALE_VMS VMs, every one running, every
#      acknowledged name among them; the simulator's census (SIGUSR2: each host's own VMs)
#      counts the same number with no VM on two hosts.
#   3. A host flapping its link (SIGUSR1: the simulator closes that host's gRPC server for
#      --flap-ms and serves again; its VMs keep running): the manager sees it unreachable,
#      then up, and afterwards every VM is running again, still once.
# No QEMU, no root. Sizes come from the environment (the long versions: scripts/bench fleet).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_tools curl jq python3
need_binaries
# CTest sets the SCALE_DEFAULT_* (1 000 hosts, 3 000 VMs: CI's budget); SCALE_HOSTS and
# SCALE_VMS from the caller's environment win (1 000 / 20 000 took 5.5 min on 2 cores).
HOSTS=${SCALE_HOSTS:-${SCALE_DEFAULT_HOSTS:-1000}}
VMS=${SCALE_VMS:-${SCALE_DEFAULT_VMS:-20000}}
[[ $HOSTS =~ ^[0-9]+$ && $VMS =~ ^[0-9]+$ && $HOSTS -ge 1 && $VMS -ge 2 ]] ||
  fail "SCALE_HOSTS and SCALE_VMS must be positive numbers (VMs at least 2)"
REPO=$(cd "$(dirname "$0")/../.." && pwd)

WORK=$(mktemp -d /tmp/strata-e2e-scale.XXXXXX)
SIM_PID=
CREATES_PID=
cleanup() {
  local rc=$?
  set +e
  e2e_logs_on_failure "$rc" 30 stratad="$WORK/mgr/stratad.log" sim="$WORK/sim.log"
  [ -n "$CREATES_PID" ] && kill "$CREATES_PID" 2>/dev/null
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null
  [ -n "${MGR_PID:-}" ] && kill "$MGR_PID" 2>/dev/null
  wait 2>/dev/null
  e2e_finish "$rc"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# Each simulated host holds a listening socket, the manager's connection and its gRPC
# server's descriptors; the manager holds one per host too (both in this shell's limit).
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] || [ "$nofile" -ge $((HOSTS * 10)) ] ||
  skip "open-files limit $nofile is below the $((HOSTS * 10)) that $HOSTS simulated hosts need"

t_start=$(date +%s)
since() { echo "$(($(date +%s) - t_start)) s"; }
LISTEN="127.0.0.1:$(free_port)"
MGR_ARGS=(--insecure-http --log-level warn --enroll-rate 100000)
start_stratad "$WORK/mgr" "$LISTEN" "${MGR_ARGS[@]}"

# Join tokens, at most 10 000 a request (one transaction each).
: >"$WORK/tokens"
chmod 600 "$WORK/tokens"
left=$HOSTS
while ((left > 0)); do
  n=$((left > 10000 ? 10000 : left))
  jt=$(api POST /api/v1/join-tokens "{\"ttl_s\":3600,\"count\":$n}")
  [ "$(last_status)" = 201 ] || fail "join tokens: HTTP $(last_status) $jt"
  jq -r '.join_tokens[].token' <<<"$jt" >>"$WORK/tokens"
  left=$((left - n))
done
FLAPPER=sim-00007
[ "$HOSTS" -ge 7 ] || FLAPPER=sim-00001
base="127.$((100 + RANDOM % 100)).$((RANDOM % 250)).1"
"$STRATA_AGENT" sim --hosts "$HOSTS" --address-base "$base" --port "$(free_port)" \
  --state-dir "$WORK/sim" --manager "$API_URL" --join-tokens-file "$WORK/tokens" \
  --ca-fingerprint "$(jq -r .ca_fingerprint <<<"$jt")" --cpus 64 --memory-mib 262144 \
  --boot-ms 0 --shutdown-ms 100 --flap-host "$FLAPPER" --flap-ms 12000 \
  --log-level info >"$WORK/sim.log" 2>&1 &
SIM_PID=$!

summary() { api GET /api/v1/summary; }
hosts_up() { summary | jq -r '.hosts.by_state.up // 0'; }
vms_running() { summary | jq -r '.vms.by_state.running // 0'; }
all_up() { [ "$(hosts_up)" -ge "$HOSTS" ]; }
wait_for 600 "$HOSTS hosts up" all_up || fail "hosts up: $(summary | jq -c .hosts)"
log "$HOSTS simulated hosts up ($(since))"

# 1. The storm, and a kill -9 of stratad halfway.
creates() {  # creates OUT: the VMs not acknowledged yet, acknowledged ones appended to acked
  CREATES_ACKED="$WORK/acked" CREATES_SKIP="$WORK/acked" \
    python3 "$REPO/bench/fleet/creates.py" "$API_URL" "$TOKEN" s "$VMS" 16 >"$1"
}
: >"$WORK/acked"
creates "$WORK/storm1.json" &
CREATES_PID=$!
half() { [ "$(wc -l <"$WORK/acked")" -ge $((VMS / 2)) ]; }
wait_for 600 "half of the creates acknowledged" half || fail "storm: $(wc -l <"$WORK/acked") acknowledged"
kill -9 "$MGR_PID"
wait "$MGR_PID" 2>/dev/null || true
acked_at_kill=$(wc -l <"$WORK/acked")
wait "$CREATES_PID" || true
CREATES_PID=
log "stratad killed (-9) with $acked_at_kill of $VMS creates acknowledged ($(since)): $(cat "$WORK/storm1.json")"
start_stratad "$WORK/mgr" "$LISTEN" "${MGR_ARGS[@]}"
wait_for 300 "$HOSTS hosts up again" all_up || fail "hosts up after restart: $(summary | jq -c .hosts)"
creates "$WORK/storm2.json"
log "storm resumed ($(since)): $(cat "$WORK/storm2.json")"
# Only 409s (committed, answer lost in the kill) may be refused.
jq -e '.errors | del(.["409"]) | length == 0' "$WORK/storm2.json" >/dev/null ||
  fail "resumed storm: $(cat "$WORK/storm2.json")"

# 2. Every VM accounted for: the API's and the hosts' own counts.
all_running() { [ "$(vms_running)" -ge "$VMS" ]; }
wait_for 600 "$VMS VMs running" all_running || fail "running: $(summary | jq -c .vms)"
total=$(summary | jq -r '.vms.total')
[ "$total" = "$VMS" ] || fail "the API counts $total VMs, expected $VMS: $(summary | jq -c .vms)"
names() {  # every VM's name, paged
  local after="" page
  while :; do
    page=$(api GET "/api/v1/vms?limit=1000&sort=name${after:+&after=$after}")
    jq -r '.vms[].name' <<<"$page"
    after=$(jq -r '.next // empty' <<<"$page")
    [ -n "$after" ] || return 0
  done
}
names | sort >"$WORK/names"
[ "$(wc -l <"$WORK/names")" = "$VMS" ] || fail "listed $(wc -l <"$WORK/names") VMs, expected $VMS"
missing=$(sort -u "$WORK/acked" | comm -23 - "$WORK/names" | head -5)
[ -z "$missing" ] || fail "acknowledged creates missing after the restart: $missing"
census() {  # census: the simulator's line "... vms=N duplicates=D" after a fresh SIGUSR2
  local before
  before=$(grep -c "sim fleet census" "$WORK/sim.log" || true)
  kill -USR2 "$SIM_PID"
  for _ in $(seq 1 50); do
    [ "$(grep -c "sim fleet census" "$WORK/sim.log" || true)" -gt "$before" ] && break
    sleep 0.2
  done
  grep "sim fleet census" "$WORK/sim.log" | tail -1
}
line=$(census)
grep -q " vms=$VMS .*duplicates=0" <<<"$line" || fail "the hosts' census: $line (expected vms=$VMS duplicates=0)"
log "every VM accounted for after the kill -9 ($(since)): $line"

# 3. A host flapping its link.
state_of() { api GET "/api/v1/hosts/$FLAPPER" | jq -r .state; }
kill -USR1 "$SIM_PID"
not_up() { [ "$(state_of)" != up ]; }
wait_for 60 "$FLAPPER seen down" not_up || fail "$FLAPPER never left up: $(api GET "/api/v1/hosts/$FLAPPER" | jq -c '{state, last_heartbeat_ms}')"
log "$FLAPPER is $(state_of)"
is_up() { [ "$(state_of)" = up ]; }
wait_for 120 "$FLAPPER up again" is_up || fail "$FLAPPER did not come back: $(state_of)"
wait_for 300 "$VMS VMs running after the flap" all_running || fail "running after the flap: $(summary | jq -c .vms)"
total=$(summary | jq -r '.vms.total')
[ "$total" = "$VMS" ] || fail "after the flap the API counts $total VMs"
line=$(census)
grep -q " vms=$VMS .*duplicates=0" <<<"$line" || fail "census after the flap: $line"
grep -q "flap host=$FLAPPER down" "$WORK/sim.log" || fail "the simulator did not flap $FLAPPER"
log "ok: $HOSTS hosts, $VMS VMs, kill -9 mid-storm and a flapping host, nothing lost or doubled ($(since))"
