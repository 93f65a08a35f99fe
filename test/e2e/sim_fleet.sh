#!/usr/bin/env bash
# Simulated hosts through the real manager (docs/internals/fleet.md), so the path the fleet
# benchmark uses cannot rot: `strata-agent sim` with 3 hosts, each enrolled with its own
# join token (CA pinned) and dialled by stratad with mutual TLS on its own loopback
# address; VMs created and started through the REST API land on them and run; a stop goes
# through the simulated guest shutdown; a VM the simulator is told to fail does not run.
# No QEMU, no root (~10 s). Label e2e.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_tools curl jq
need_binaries

WORK=$(mktemp -d /tmp/strata-e2e-sim.XXXXXX)
SIM_PID=
cleanup() {
  local rc=$?
  set +e
  e2e_logs_on_failure "$rc" 30 stratad="$WORK/mgr/stratad.log" sim="$WORK/sim.log"
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null
  [ -n "${MGR_PID:-}" ] && kill "$MGR_PID" 2>/dev/null
  wait 2>/dev/null
  e2e_finish "$rc"
}
trap cleanup EXIT

start_stratad "$WORK/mgr" "127.0.0.1:$(free_port)" --insecure-http --log-level warn
: >"$WORK/tokens"
chmod 600 "$WORK/tokens"
# The three hosts' tokens in one request (a batch: one transaction).
jt=$(api POST /api/v1/join-tokens '{"ttl_s":600,"count":3}')
[ "$(last_status)" = 201 ] || fail "join tokens: HTTP $(last_status) $jt"
jq -r '.join_tokens[].token' <<<"$jt" >>"$WORK/tokens"
[ "$(wc -l <"$WORK/tokens")" = 3 ] || fail "expected 3 join tokens: $jt"
# A random 127.x.y.1 base: parallel runs on one machine do not collide.
base="127.$((100 + RANDOM % 100)).$((RANDOM % 250)).1"
"$STRATA_AGENT" sim --hosts 3 --address-base "$base" --port "$(free_port)" --state-dir "$WORK/sim" \
  --manager "$API_URL" --join-tokens-file "$WORK/tokens" \
  --ca-fingerprint "$(jq -r .ca_fingerprint <<<"$jt")" --cpus 8 --memory-mib 16384 \
  --boot-ms 300 --shutdown-ms 300 --fail-vm doomed --tick-ms 50 >"$WORK/sim.log" 2>&1 &
SIM_PID=$!

all_up() { [ "$(api GET /api/v1/hosts | jq '[.hosts[] | select(.state == "up")] | length')" = 3 ]; }
wait_for 30 "3 hosts up" all_up || fail "hosts: $(api GET /api/v1/hosts | jq -c '[.hosts[] | {name, state}]')"
hosts=$(api GET /api/v1/hosts)
# The simulated inventory reached the scheduler's fields; each host its own address.
[ "$(jq '[.hosts[] | select(.cpu_threads == 8 and .memory_mib == 16384)] | length' <<<"$hosts")" = 3 ] ||
  fail "inventory: $(jq -c '[.hosts[] | {name, cpu_threads, memory_mib}]' <<<"$hosts")"
[ "$(jq '[.hosts[].address] | unique | length' <<<"$hosts")" = 3 ] || fail "addresses not unique"
# Mutual TLS: every host has its certificate pinned.
[ "$(jq '[.hosts[] | select((.cert_fingerprint // "") != "")] | length' <<<"$hosts")" = 3 ] ||
  fail "not every host is pinned: $(jq -c '[.hosts[] | {name, cert_fingerprint}]' <<<"$hosts")"
log "3 simulated hosts up"

vm() {  # vm NAME: 1 vCPU, 128 MiB, a blank boot disk, started
  jq -cn --arg n "$1" '{name: $n, vcpus: 1, memory_mib: 128,
    disks: [{name: "root", size_bytes: 1073741824, boot: true}], start: true}'
}
for n in a1 a2 a3 a4 doomed; do
  api POST /api/v1/vms "$(vm "$n")" >/dev/null
  [ "$(last_status)" = 202 ] || fail "create $n: HTTP $(last_status)"
done
state() { api GET "/api/v1/vms/$1" | jq -r .status.state; }
running() { [ "$(state "$1")" = running ]; }
for n in a1 a2 a3 a4; do
  wait_for 30 "$n running" running "$n" || fail "$n: $(api GET "/api/v1/vms/$n" | jq -c .status)"
  h=$(api GET "/api/v1/vms/$n" | jq -r .host)
  [[ $h == sim-0000[123] ]] || fail "$n placed on '$h'"
done
log "4 VMs running on simulated hosts"

# A stop goes through the simulated guest shutdown.
api POST /api/v1/vms/a1/stop '{}' >/dev/null
case $(last_status) in 200 | 202) ;; *) fail "stop a1: HTTP $(last_status)" ;; esac
stopped() { [ "$(state a1)" = stopped ]; }
wait_for 30 "a1 stopped" stopped || fail "a1: $(api GET /api/v1/vms/a1 | jq -c .status)"

# The injected failure: never running, and the reason reaches the API.
failed() {
  local s
  s=$(api GET /api/v1/vms/doomed)
  [ "$(jq -r .status.state <<<"$s")" != running ] &&
    jq -r '.status.last_error // ""' <<<"$s" | grep -q "injected"
}
wait_for 30 "doomed failed" failed || fail "doomed: $(api GET /api/v1/vms/doomed | jq -c .status)"
log "ok"
