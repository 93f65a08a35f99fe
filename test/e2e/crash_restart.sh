#!/usr/bin/env bash
# Crash e2e: stratad (SQLite) + one strata-agent (enrolled over HTTP, driven over its UNIX
# socket). 50 concurrent operations: 4 creates (k1..k4, k2 boots) and 23 create-then-delete
# pairs (d01..d23, start=false); tiny guests, 128 MiB. The host has 2 threads and the
# scheduler overcommits vCPUs 4x, so at most 8 VMs fit: creates that hit 422 wait for deletes while stratad is killed with SIGKILL every 1-2 s and restarted.
# Clients retry until they get a definite answer (2xx, 404, 409; 422 "cannot schedule" is
# retried: after each restart the host counts as up only after its first heartbeat). After the burst the last
# stratad settles, then the invariants are checked against the agent's own list:
#   - no duplicate VM names; every acknowledged delete is gone, every create exists
#   - every agent VM has exactly one record (same name, same strata.vm-id) and vice versa
#     (the manager adopts nothing without a record: an orphan would be a leak)
#   - no record left half-deleted; desired state == observed state (manager and agent)
#   - every task finished, or is still pending for a VM that exists (resumable)
# Needs QEMU and the tiny guest images; otherwise exits 77.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_tools curl jq qemu-system-x86_64 qemu-img xargs
need_binaries
need_tiny_images

PORT=${E2E_CRASH_PORT:-$(free_port)}
WORK=$(mktemp -d /tmp/strata-e2e-crash.XXXXXX)
chmod 711 "$WORK"  # QEMU runs as strata-qemu: it must pass through to the VM folders
AGENT_PID=
MGR_PID=
KILLER_PID=
SOCK=$WORK/agent/agent.sock
agent_ctl() { "$STRATA_AGENT" ctl --socket "$SOCK" --timeout 20 "$@"; }

cleanup() {
  local rc=$?
  set +e
  [ -n "$KILLER_PID" ] && kill "$KILLER_PID" 2>/dev/null
  e2e_logs_on_failure $rc 40 stratad="$WORK/mgr/stratad.log" agent="$WORK/agent.log"
  e2e_remove_agent_vms "$SOCK" undefine
  [ -f "$WORK/mgr.pid" ] && kill "$(cat "$WORK/mgr.pid")" 2>/dev/null
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null
  wait 2>/dev/null
  e2e_finish $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mgr_args=(--db "sqlite:$WORK/mgr/strata.db" --heartbeat-ms 500 --miss-threshold 4)
start_stratad "$WORK/mgr" "127.0.0.1:$PORT" "${mgr_args[@]}"
echo "$MGR_PID" >"$WORK/mgr.pid"
log "stratad pid $MGR_PID at $API_URL"

start_local_agent crash-host 180
log "host crash-host up"

# ---- the burst: one line per operation, run by 8 concurrent clients
# Each client retries a request until the answer is definite: 2xx, 404 or 409.
cat >"$WORK/op.sh" <<'OPEOF'
#!/usr/bin/env bash
# op.sh KIND NAME BODY: KIND create|create-delete; appends "NAME RESULT" lines to $OUT.
set -u
kind=$1 name=$2 body=$3
call() {  # call METHOD PATH [BODY] -> HTTP code, retrying while the manager is down
  local code i
  for ((i = 0; i < 2000; i++)); do
    if [ -n "${3:-}" ]; then
      code=$(curl -s -o /dev/null -m 20 -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' --data-binary "$3" "$API_URL$2")
    else
      code=$(curl -s -o /dev/null -m 20 -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" "$API_URL$2")
    fi
    # 422 too is retried: right after a restart the host is not confirmed up yet
    case $code in 2??|404|409) echo "$code"; return 0 ;; esac
    sleep 0.3
  done
  echo "gaveup"
}
c=$(call POST /api/v1/vms "$body")
echo "$name create $c" >>"$OUT"
if [ "$kind" = create-delete ]; then
  d=$(call DELETE "/api/v1/vms/$name")
  # 409: a delete raced with the restart (already being deleted); retry once settled
  echo "$name delete $d" >>"$OUT"
fi
OPEOF
chmod +x "$WORK/op.sh"
: >"$WORK/ops.txt"
for k in 1 2 3 4; do
  start=false
  [ "$k" = 2 ] && start=true
  printf '%s\t%s\t%s\n' create "k$k" "$(vm_body "k$k" "$start")" >>"$WORK/ops.txt"
done
for n in $(seq -w 1 23); do
  printf '%s\t%s\t%s\n' create-delete "d$n" "$(vm_body "d$n" false)" >>"$WORK/ops.txt"
done
shuf -o "$WORK/ops.txt" "$WORK/ops.txt"
export OUT=$WORK/results.txt API_URL TOKEN
: >"$OUT"

# The killer: SIGKILL stratad every 0.5-2.0 s and start it again at once, until told to stop.
(
  trap 'exit 0' TERM
  kills=0
  while [ ! -f "$WORK/stop-killing" ]; do
    t=$((5 + RANDOM % 16))  # 0.5..2.0 s: some kills land before serving, some mid-request
    sleep "$((t / 10)).$((t % 10))"
    [ -f "$WORK/stop-killing" ] && break
    pid=$(cat "$WORK/mgr.pid")
    kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    "$STRATAD" --data-dir "$WORK/mgr" --listen "127.0.0.1:$PORT" "${mgr_args[@]}" >>"$WORK/mgr/stratad.log" 2>&1 &
    echo $! >"$WORK/mgr.pid"
    echo "$kills" >"$WORK/kills"
  done
) &
KILLER_PID=$!

t0=$(date +%s)
tr '\t' '\037' <"$WORK/ops.txt" |
  xargs -P 8 -d '\n' -I{} bash -c 'IFS=$'"'"'\037'"'"' read -r k n b <<<"$1"; "$0" "$k" "$n" "$b"' "$WORK/op.sh" {}
t1=$(date +%s)
# Keep killing a few more seconds (the controller is mid-flight now), and until there were
# at least 3 kills however fast the burst went.
sleep 4
for ((i = 0; i < 120; i++)); do
  [ "$(cat "$WORK/kills" 2>/dev/null || echo 0)" -ge 3 ] && break
  sleep 0.5
done
touch "$WORK/stop-killing"
wait "$KILLER_PID" 2>/dev/null || true
KILLER_PID=
kills=$(cat "$WORK/kills" 2>/dev/null || echo 0)
MGR_PID=$(cat "$WORK/mgr.pid")
log "burst done in $((t1 - t0)) s; stratad was killed $kills times"
[ "$kills" -ge 3 ] || fail "only $kills kills happened; the burst was too short to test anything"
grep -q gaveup "$OUT" && fail "some client gave up: $(grep gaveup "$OUT")"
log "results: $(awk '{print $2"="$3}' "$OUT" | sort | uniq -c | tr '\n' ' ')"

# The last stratad must be serving.
wait_for 60 "stratad healthy" curl -sf -m 2 "$API_URL/healthz" || fail "final stratad not healthy"

# ---- settle: no deletion pending, every VM's observed state matches the desired one
settled() {
  api GET '/api/v1/vms?limit=1000' >"$WORK/vms.json" || return 1
  jq -e '[.vms[] | select(.deletion_requested or
           (.desired_state == "running" and .status.state != "running") or
           (.desired_state == "stopped" and (.status.state | IN("stopped", "defined") | not)))]
         | length == 0' "$WORK/vms.json" >/dev/null
}
wait_for 420 "settled" settled ||
  fail "not settled: $(jq -c '[.vms[] | select(.deletion_requested or .desired_state != .status.state) | {name, desired_state, s: .status.state, e: .status.last_error, del: .deletion_requested}]' "$WORK/vms.json")"
log "settled: $(jq -c '[.vms[] | .status.state] | group_by(.) | map({(.[0]): length}) | add' "$WORK/vms.json")"

# ---- invariants
agent_ctl -o json vm list >"$WORK/agent-vms.json" || fail "agent list failed"
records=$(jq -r '.vms[].name' "$WORK/vms.json" | sort)
dups=$(uniq -d <<<"$records")
[ -z "$dups" ] || fail "duplicate VM names in the store: $dups"
for k in 1 2 3 4; do
  grep -qx "k$k" <<<"$records" || fail "k$k was created ($(grep "^k$k create" "$OUT")) but has no record"
done
for n in $(seq -w 1 23); do
  if grep -qx "d$n" <<<"$records"; then fail "d$n was deleted ($(grep "^d$n " "$OUT" | tr '\n' ' ')) but still exists"; fi
done
[ "$(wc -l <<<"$records")" = 4 ] || fail "expected 4 VM records, got $(wc -l <<<"$records")"

# Agent side vs. records: one-to-one by name and strata.vm-id.
jq -r '.vms[] | "\(.spec.name) \(.spec.labels["strata.vm-id"] // "-") \(.state)"' "$WORK/agent-vms.json" |
  sort >"$WORK/agent-pairs"
jq -r '.vms[] | "\(.name) \(.id)"' "$WORK/vms.json" | sort >"$WORK/record-pairs"
orphans=$(join -v1 <(cut -d' ' -f1,2 "$WORK/agent-pairs" | tr ' ' '/') <(tr ' ' '/' <"$WORK/record-pairs") || true)
[ -z "$orphans" ] || fail "VMs on the agent without a matching record (name/vm-id): $orphans"
missing=$(join -v2 <(cut -d' ' -f1,2 "$WORK/agent-pairs" | tr ' ' '/') <(tr ' ' '/' <"$WORK/record-pairs") || true)
[ -z "$missing" ] || fail "records without their VM on the agent (name/id): $missing"
# Observed on the agent == desired in the store.
while read -r name id state; do
  want=$(jq -r --arg n "$name" '.vms[] | select(.name == $n) | .desired_state' "$WORK/vms.json")
  case "$want/$state" in
    running/VM_STATE_RUNNING | stopped/VM_STATE_DEFINED | stopped/VM_STATE_STOPPED) ;;
    *) fail "$name: desired $want, agent says $state" ;;
  esac
done <"$WORK/agent-pairs"
running=$(grep -c VM_STATE_RUNNING "$WORK/agent-pairs" || true)
[ "$running" = 1 ] || fail "expected 1 running VM (k2), the agent runs $running"

# Tasks: finished, or still open for a VM that exists (the controller resumes it).
api GET '/api/v1/tasks?limit=1000' >"$WORK/tasks.json"
ids=$(jq -r '.vms[].id' "$WORK/vms.json")
open_tasks=$(jq -r '.tasks[] | select(.state | IN("succeeded", "failed") | not) | "\(.id) \(.kind) \(.target_id) \(.state)"' "$WORK/tasks.json")
stale=""
while read -r tid kind target state; do
  [ -n "${tid:-}" ] || continue
  grep -qx "$target" <<<"$ids" || stale+="$tid($kind,$state,vm $target gone) "
done <<<"$open_tasks"
log "tasks: $(jq -c '[.tasks[].state] | group_by(.) | map({(.[0]): length}) | add' "$WORK/tasks.json"); open for live VMs: $(grep -c . <<<"$open_tasks" || true)"
[ -z "$stale" ] || fail "tasks neither finished nor resumable: $stale"
failed=$(jq -r '[.tasks[] | select(.state == "failed") | "\(.kind):\(.message)"] | join("; ")' "$WORK/tasks.json")
[ -z "$failed" ] || log "failed tasks (allowed: each has a message): $failed"
log "PASS crash test: $kills kills, 50 operations, invariants hold"
