#!/usr/bin/env bash
# Multi-host e2e: three "hosts" = network namespaces st-h1..st-h3, each with a veth into a
# bridge (st-br0, 10.201.0.1/24) in the root namespace where stratad listens. Each host runs
# strata-agent serve --manager ... --join-token ... (enrollment over HTTP, then gRPC back
# over TCP). The tiny guest images are imported once, into stratad's catalog (`strata image
# import`); no host has them until the manager pushes them (agent PutImage) before defining
# a VM there. Creates 6 tiny VMs through the API, checks they spread over all hosts and run
# (STRATA-READY on the serial console), cuts one host's link (host unreachable, its VMs
# "unknown" but still listed), restores it (host up again, VMs running).
# Needs root, iproute2, curl, jq, QEMU and the tiny guest images; otherwise exits 77.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
need_tools ip curl jq qemu-system-x86_64 qemu-img
need_binaries
need_tiny_images

NS=(st-h1 st-h2 st-h3)
BR=st-br0
MGR_IP=10.201.0.1
PORT=${E2E_MGR_PORT:-7480}
AGENT_PORT=7700
WORK=$(mktemp -d /tmp/strata-e2e-netns.XXXXXX)
chmod 711 "$WORK"  # QEMU runs as strata-qemu: it must pass through to the VM folders
MGR_PID=
AGENT_PIDS=()

host_ip() { echo "10.201.0.1$1"; }  # host index 1..3 -> 10.201.0.11..13

cleanup() {
  local rc=$? i ns
  set +e
  if [ $rc -ne 0 ] && [ $rc -ne $SKIP_RC ]; then
    echo "--- stratad log (tail) ---" >&2; tail -40 "$WORK/mgr/stratad.log" >&2
    for i in 1 2 3; do
      echo "--- agent h$i log (tail) ---" >&2; tail -15 "$WORK/h$i/agent.log" >&2
    done
  fi
  [ -n "${uffd_old:-}" ] && echo "$uffd_old" >/proc/sys/vm/unprivileged_userfaultfd  # post-copy step
  for i in 1 2 3; do e2e_remove_agent_vms "$WORK/h$i/agent.sock"; done  # VMs, then the agents
  for p in "${AGENT_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "$MGR_PID" ] && kill "$MGR_PID" 2>/dev/null
  for ns in "${NS[@]}"; do  # anything left in our namespaces (shims, QEMUs) by pid
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  wait 2>/dev/null
  for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  for i in 1 2 3; do ip link del "st-v$i" 2>/dev/null; done
  ip link del "$BR" 2>/dev/null
  e2e_finish $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- network: bridge in the root namespace, one veth per host namespace
for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
for i in 1 2 3; do ip link del "st-v$i" 2>/dev/null || true; done
ip link del "$BR" 2>/dev/null || true
ip link add "$BR" type bridge
ip addr add "$MGR_IP/24" dev "$BR"
ip link set "$BR" up
for i in 1 2 3; do
  ns=${NS[$((i - 1))]}
  ip netns add "$ns"
  ip link add "st-v$i" type veth peer name eth0 netns "$ns"
  ip link set "st-v$i" master "$BR" up
  ip -n "$ns" addr add "$(host_ip "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done
log "network up: $BR $MGR_IP, hosts $(host_ip 1) $(host_ip 2) $(host_ip 3)"

# ---- manager on the bridge address
# Every host has a fence device: fence_netns (this folder), the "power controller" of a
# namespace host, spoken to with the fence-agents protocol like fence_ipmilan.
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
jq -n --arg d "$E2E_DIR" '{agent_dir: $d, hosts: {
  h1: {agent: "fence_netns", timeout_s: 20, params: {netns: "st-h1", dead_if: ($w + "/fence-dead-h1")}},
  h2: {agent: "fence_netns", timeout_s: 20, params: {netns: "st-h2", dead_if: ($w + "/fence-dead-h2")}},
  h3: {agent: "fence_netns", timeout_s: 20, params: {netns: "st-h3", dead_if: ($w + "/fence-dead-h3")}}}}' \
  --arg w "$WORK" >"$WORK/fence.json"
# One live migration at a time per host, so the queue is seen below (the default is 2).
# HA leases of 20 s (default 60): long enough that the fence, when it works, comes first
# (about 8 s after a failure), short enough for the lease test below.
HA_LEASE_S=20
MGR_ARGS=(--db "sqlite:$WORK/mgr/strata.db" --heartbeat-ms 1000 --miss-threshold 3
  --fence-config "$WORK/fence.json" --migrations-per-host 1 --ha-lease "$HA_LEASE_S")
start_stratad "$WORK/mgr" "$MGR_IP:$PORT" "${MGR_ARGS[@]}"
log "stratad pid $MGR_PID at $API_URL"
import_catalog_images || fail "image import through stratad: $(api GET /api/v1/images)"
[ "$(api GET /api/v1/images | jq '.images | length')" = 3 ] || fail "catalog does not list 3 images"
log "images in the catalog: $(api GET /api/v1/images | jq -c '[.images[] | {name, kind, format, size_bytes}]')"
for i in 1 2 3; do  # each namespace reaches the manager over its veth
  ip netns exec "${NS[$((i - 1))]}" curl -sf -m 5 "$API_URL/healthz" >/dev/null || fail "no link from h$i"
done

# ---- agents, one per namespace, each enrolling with its own join token. They all mount one
# folder as datastore "shared" (in a real pool: an NFS export or a cluster file system).
mkdir -p "$WORK/datastore"
for i in 1 2 3; do
  ns=${NS[$((i - 1))]}
  dir=$WORK/h$i
  mkdir -p "$dir"
  api POST /api/v1/join-tokens '{"ttl_s":600}' >"$WORK/jt$i.json"
  jt=$(jq -r .token "$WORK/jt$i.json")
  ca_fp=$(jq -r .ca_fingerprint "$WORK/jt$i.json")  # the agent pins the manager's CA
  [ "$(last_status)" = 201 ] && [ -n "$jt" ] || fail "join token: HTTP $(last_status)"
  [ "$ca_fp" = "sha256:$(openssl x509 -in "$WORK/mgr/pki/ca.crt" -outform DER | sha256sum | cut -d' ' -f1)" ] ||
    fail "join token's ca_fingerprint $ca_fp is not the CA's"
  ip netns exec "$ns" "$STRATA_AGENT" serve --state-dir "$dir" --images "$dir/images" \
    --listen "unix:$dir/agent.sock" --listen-tcp "$(host_ip "$i"):$AGENT_PORT" --accel tcg \
    --manager "$API_URL" --join-token "$jt" --ca-fingerprint "$ca_fp" --advertise "$(host_ip "$i"):$AGENT_PORT" \
    --name "h$i" --datastore "shared=$WORK/datastore" >"$dir/agent.log" 2>&1 &
  AGENT_PIDS+=($!)
done

hosts_in_state() {  # hosts_in_state STATE N: at least N hosts have state STATE
  local n
  n=$(api GET /api/v1/hosts | jq --arg s "$1" '[.hosts[] | select(.state == $s)] | length')
  [ "${n:-0}" -ge "$2" ]
}
host_state() { api GET "/api/v1/hosts/$1" | jq -r .state; }
host_is() { [ "$(host_state "$1")" = "$2" ]; }
vm_count_is() { [ "$(vms_json | jq '.vms | length')" = "$1" ]; }

# What the manager and each host see, for a failure to reach hosts (seen once: all three
# stayed unreachable although every agent served).
diagnose_hosts() {
  local i
  for i in 1 2 3; do
    echo "--- h$i: listening in ${NS[$((i - 1))]}; manager's sockets to it; TLS probe ---" >&2
    ip netns exec "${NS[$((i - 1))]}" ss -ltn >&2
    ss -tnai dst "$(host_ip "$i")" >&2
    timeout 5 openssl s_client -connect "$(host_ip "$i"):$AGENT_PORT" -CAfile "$WORK/mgr/pki/ca.crt" \
      </dev/null 2>&1 | grep -E "^(CONNECTED|verify|Verification|Peer signature)|errno|error" >&2
  done
  echo "--- stratad threads (wchan) ---" >&2
  for t in /proc/"$MGR_PID"/task/*; do echo "$(cat "$t/comm") $(cat "$t/wchan")"; done | sort | uniq -c >&2
}

wait_for 180 "3 hosts up" hosts_in_state up 3 || {
  diagnose_hosts
  fail "hosts not up: $(api GET /api/v1/hosts | jq -c '[.hosts[] | {name, state, reachability}]')"
}
log "3 hosts up: $(api GET /api/v1/hosts | jq -c '[.hosts[] | {name, address, state}]')"
for i in 1 2 3; do
  grep -q "enrolled with" "$WORK/h$i/agent.log" || fail "h$i did not log its enrollment"
  [ -f "$WORK/h$i/enrollment.json" ] || fail "h$i has no enrollment record"
  # Mutual TLS: the host's own key (0600, never sent), its certificate from the manager's CA.
  [ "$(stat -c %a "$WORK/h$i/tls/host.key")" = 600 ] || fail "h$i host.key is not 0600"
  cmp -s "$WORK/h$i/tls/ca.crt" "$WORK/mgr/pki/ca.crt" || fail "h$i does not hold the manager's CA"
  openssl verify -CAfile "$WORK/mgr/pki/ca.crt" "$WORK/h$i/tls/host.crt" >/dev/null ||
    fail "h$i certificate does not verify against the manager's CA"
  openssl x509 -in "$WORK/h$i/tls/host.crt" -noout -ext subjectAltName | grep -q "IP Address:$(host_ip "$i")" ||
    fail "h$i certificate does not name $(host_ip "$i")"
  # Its migration certificate (second key, 0600): same CA, client + server use, its address.
  [ "$(stat -c %a "$WORK/h$i/tls/migration.key")" = 600 ] || fail "h$i migration.key is not 0600"
  openssl verify -CAfile "$WORK/mgr/pki/ca.crt" "$WORK/h$i/tls/migration.crt" >/dev/null ||
    fail "h$i migration certificate does not verify against the manager's CA"
  openssl x509 -in "$WORK/h$i/tls/migration.crt" -noout -ext extendedKeyUsage |
    grep -q "TLS Web Server Authentication, TLS Web Client Authentication" ||
    fail "h$i migration certificate is not for client and server use"
  openssl x509 -in "$WORK/h$i/tls/migration.crt" -noout -ext subjectAltName | grep -q "IP Address:$(host_ip "$i")" ||
    fail "h$i migration certificate does not name $(host_ip "$i")"
  # The TCP port refuses a plaintext client (the manager got in above, with its certificate).
  if ip netns exec "${NS[$((i - 1))]}" "$STRATA_AGENT" ctl --address "$(host_ip "$i"):$AGENT_PORT" \
    --timeout 3 health >/dev/null 2>&1; then
    fail "h$i answered a plaintext gRPC client on its TCP port"
  fi
done
[ "$(stat -c %a "$WORK/mgr/pki/ca.key")" = 600 ] || fail "the manager's CA key is not 0600"
log "mutual TLS: 3 host certificates and 3 migration certificates from the manager's CA; plaintext refused"

# ---- 6 tiny VMs through the API
# vm1 boots a kernel of its own (the same file under another catalog name): only vm1's
# host has it, so vm1's migration below must bring it to its target first.
env STRATA_SERVER="$API_URL" STRATA_TOKEN="$TOKEN" "$STRATA_CLI" image import tiny-kernel-m \
  "$TINY_KERNEL" --kind kernel >/dev/null 2>&1 || fail "import tiny-kernel-m"
for n in 1 2 3 4 5 6; do
  extra=""
  [ "$n" = 1 ] && extra=', kernel: "tiny-kernel-m"'
  api POST /api/v1/vms "$(vm_body "vm$n" true "$extra")" >"$WORK/create-vm$n.json"
  [ "$(last_status)" = 202 ] || fail "create vm$n: HTTP $(last_status) $(cat "$WORK/create-vm$n.json")"
done
vms_json() { api GET /api/v1/vms; }
vm_state() { api GET "/api/v1/vms/$1" | jq -r .status.state; }
vm_is() { [ "$(vm_state "$1")" = "$2" ]; }
qemu_of() { ps -eo comm=,args= | awk -v g="guest=$1" '$1 ~ /^qemu-system/ { for (i = 2; i <= NF; i++) if ($i == g) n++ } END { print n + 0 }'; }
all_running() {
  [ "$(vms_json | jq '[.vms[] | select(.status.state == "running")] | length')" = 6 ]
}
wait_for 300 "6 VMs running" all_running ||
  fail "VMs not running: $(vms_json | jq -c '[.vms[] | {name, host, s: .status.state, e: .status.last_error}]')"
placement=$(vms_json | jq -c '[.vms[] | {name, host}]')
log "6 VMs running: $placement"
used=$(vms_json | jq '[.vms[].host] | unique | length')
[ "$used" = 3 ] || fail "VMs not spread over all 3 hosts: $placement"
for h in h1 h2 h3; do
  c=$(vms_json | jq --arg h "$h" '[.vms[] | select(.host == $h)] | length')
  log "host $h runs $c VMs"
done

# Every VM really runs on the agent the manager placed it on, and its guest booted.
console_ready() {  # console_ready HOST_INDEX VM
  "$STRATA_AGENT" ctl --socket "$WORK/h$1/agent.sock" --timeout 10 vm console "$2" --bytes 65536 |
    grep -q STRATA-READY
}
for n in 1 2 3 4 5 6; do
  h=$(api GET "/api/v1/vms/vm$n" | jq -r .host)
  i=${h#h}
  st=$("$STRATA_AGENT" ctl --socket "$WORK/h$i/agent.sock" -o json vm show "vm$n" | jq -r .state)
  [ "$st" = VM_STATE_RUNNING ] || fail "vm$n: agent on $h says '$st'"
  wait_for 240 "vm$n ready" console_ready "$i" "vm$n" || fail "vm$n: no STRATA-READY on $h's console"
done
log "all 6 guests printed STRATA-READY"
# The images reached every host by distribution from the catalog (none was imported there).
for img in tiny-kernel tiny-initrd tiny-base; do
  holders=$(api GET "/api/v1/images/$img" | jq -c '[.hosts[].host] | sort')
  [ "$holders" = '["h1","h2","h3"]' ] || fail "image $img is on hosts $holders, not h1 h2 h3"
done
for i in 1 2 3; do
  want=$(sha256sum "$TINY_BASE" | cut -d' ' -f1)
  got=$(sha256sum "$WORK/h$i/images/images/tiny-base" | cut -d' ' -f1)
  [ "$want" = "$got" ] || fail "h$i holds a different tiny-base"
done
log "catalog images distributed to h1 h2 h3 (sha256 checked)"

# ---- the cluster CPU baseline (EVC): the three hosts are in "default", its baseline is a
# named model all of them offer (on TCG the same CPU everywhere: the mechanism, not the
# generations), and the VMs run with it.
baseline=$(api GET /api/v1/clusters/default | jq -r .cpu_model)
case "$baseline" in ''|null|max|host) fail "no named CPU baseline: $(api GET /api/v1/clusters/default | jq -c .)";; esac
[ "$(api GET /api/v1/clusters/default | jq '[.hosts[] | select(.offers_baseline)] | length')" = 3 ] ||
  fail "not every host offers $baseline: $(api GET /api/v1/clusters/default | jq -c .hosts)"
[ "$(api GET /api/v1/vms/vm1 | jq -r .status.cpu_model)" = "$baseline" ] ||
  fail "vm1 runs with CPU $(api GET /api/v1/vms/vm1 | jq -r .status.cpu_model), not the baseline $baseline"
pgrep -af "qemu-system.*-name guest=vm1[, ]" | grep -q -- "-cpu $baseline " ||
  fail "vm1's QEMU does not run -cpu $baseline: $(pgrep -af 'qemu-system.*-name guest=vm1' | head -1)"
log "cluster default: CPU baseline $baseline, offered by h1 h2 h3; vm1 runs with it"

restart_agent() {  # restart_agent I [ARGS]: h$I's agent again (enrolled before: no join token)
  local i=$1
  shift
  ip netns exec "st-h$i" "$STRATA_AGENT" serve --state-dir "$WORK/h$i" --images "$WORK/h$i/images" \
    --listen "unix:$WORK/h$i/agent.sock" --listen-tcp "$(host_ip "$i"):$AGENT_PORT" --accel tcg \
    --manager "$API_URL" --advertise "$(host_ip "$i"):$AGENT_PORT" --name "h$i" \
    --datastore "shared=$WORK/datastore" "$@" >>"$WORK/h$i/agent.log" 2>&1 &
  AGENT_PIDS[$((i - 1))]=$!
}
stop_agent() {  # stop_agent I: h$I's agent exits (SIGTERM); its VMs keep running
  local i=$1
  kill -TERM "${AGENT_PIDS[$((i - 1))]}"
  wait "${AGENT_PIDS[$((i - 1))]}" 2>/dev/null || true
}
# The agent's API level as the host's last heartbeat said, and as its stored inventory says
# (where the manager's checks read it; an agent from before levels has none there: 1).
host_levels() { api GET "/api/v1/hosts/$1" | jq -r '"\(.agent_api_level) \(.inventory.agent.api_level // 1)"'; }
levels_are() { [ "$(host_levels "$1")" = "$2 $2" ]; }

# ---- live migration: vm1 moves to the next host while it runs, and goes on running there.
# That host's agent is one version behind (docs/internals/versions.md): it serves API level
# 1, as an agent from before post-copy would; pre-copy migrations reach it all the same.
src=$(api GET /api/v1/vms/vm1 | jq -r .host)
si=${src#h}
di=$((si % 3 + 1))
dst=h$di
stop_agent "$di"
restart_agent "$di" --api-level 1
wait_for 30 "$dst's agent at API level 1" levels_are "$dst" 1 ||
  fail "$dst's agent levels: $(host_levels "$dst") (wanted 1 1)"
env STRATA_SERVER="$API_URL" STRATA_TOKEN="$TOKEN" "$STRATA_CLI" host list | awk -v h="$dst" 'NR == 1 || $1 == h' >"$WORK/hosts-old.out"
awk 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "API") c = i } NR == 2 { print $c }' "$WORK/hosts-old.out" | grep -qx 1 ||
  fail "strata host list does not show $dst at API level 1: $(cat "$WORK/hosts-old.out")"
log "$dst's agent one version behind (API level 1): $(api GET "/api/v1/hosts/$dst" | jq -c '{agent_version, agent_api_level}')"
console_has() {  # console_has HOST_INDEX VM TEXT
  "$STRATA_AGENT" ctl --socket "$WORK/h$1/agent.sock" --timeout 10 vm console "$2" --bytes 65536 |
    grep -q "$3"
}
# A file in the guest's RAM (tmpfs) and a block on its disk: both must arrive.
send_line() {  # send_line HOST_INDEX VM TEXT
  "$STRATA_AGENT" ctl --socket "$WORK/h$1/agent.sock" --timeout 10 vm console "$2" --write "$3" >/dev/null
}
send_line "$si" vm1 'echo RAM-$((40+2)) >/tmp/mark; echo DISK-$((50+3)) | dd of=/dev/vda bs=512 seek=90000 conv=fsync; echo MARK$((1+1))ED'
wait_for 60 "vm1 marked" console_has "$si" vm1 MARK2ED || fail "vm1 did not run the marking command"
cli=(env STRATA_SERVER="$API_URL" STRATA_TOKEN="$TOKEN" "$STRATA_CLI")
"${cli[@]}" vm migrate vm1 --to "$dst" --wait --wait-timeout 5m >"$WORK/migrate.out" 2>&1 ||
  fail "strata vm migrate vm1 --to $dst: $(tail -5 "$WORK/migrate.out")"
[ "$(api GET /api/v1/vms/vm1 | jq -r .host)" = "$dst" ] || fail "vm1 is on $(api GET /api/v1/vms/vm1 | jq -r .host), not $dst"
[ "$(api GET /api/v1/vms/vm1 | jq -r .status.state)" = running ] || fail "vm1 is not running after the migration"
task=$(api GET "/api/v1/tasks?limit=10000" | jq -c '[.tasks[] | select(.kind == "vm.migrate")] | last')
[ "$(jq -r .state <<<"$task")" = succeeded ] || fail "migration task: $task"
# TLS by default: both QEMUs loaded the hosts' migration certificates (mutual).
[ "$(jq -r .result.tls <<<"$task")" = true ] || fail "vm1's migration was not over TLS: $task"
grep "incoming migration ready vm=vm1 " "$WORK/$dst/agent.log" | tail -1 | grep -q " tls=true " ||
  fail "vm1's target did not listen for TLS: $(grep "incoming migration ready vm=vm1 " "$WORK/$dst/agent.log" | tail -1)"
log "vm1 migrated $src -> $dst: $(jq -c '{message, result}' <<<"$task")"
# Its own kernel went to the target before the target defined it.
api GET /api/v1/images/tiny-kernel-m | jq -e --arg d "$dst" '[.hosts[].host] | index($d)' >/dev/null ||
  fail "tiny-kernel-m is not on $dst after vm1's migration: $(api GET /api/v1/images/tiny-kernel-m | jq -c '[.hosts[].host]')"
# It runs on the target only, and it is the same guest (its RAM came along, no reboot).
st=$("$STRATA_AGENT" ctl --socket "$WORK/h$di/agent.sock" -o json vm show vm1 | jq -r .state)
[ "$st" = VM_STATE_RUNNING ] || fail "vm1 on $dst: $st"
# The task ends once the guest runs on the target; the source's paused copy is removed
# right after (confirm), never run again.
defined_on() {  # defined_on VM: the hosts whose agent defines it
  local i
  for i in 1 2 3; do
    "$STRATA_AGENT" ctl --socket "$WORK/h$i/agent.sock" -o json vm show "$1" >/dev/null 2>&1 && printf 'h%s ' "$i"
  done
}
only_on() { [ "$(defined_on "$1")" = "$2 " ]; }  # only_on VM HOST
wait_for 30 "vm1 removed from $src" only_on vm1 "$dst" || fail "vm1 is defined on [$(defined_on vm1)] after the migration to $dst"
send_line "$di" vm1 'cat /tmp/mark; dd if=/dev/vda bs=512 skip=90000 count=1 2>/dev/null | head -c 7; echo; echo CHECK$((2+3))ED'
wait_for 60 "vm1 answers on $dst" console_has "$di" vm1 CHECK5ED || fail "vm1 does not answer on $dst"
console_has "$di" vm1 RAM-42 || fail "vm1's RAM did not come along (no /tmp/mark)"
console_has "$di" vm1 DISK-53 || fail "vm1's disk write did not come along"
if console_has "$di" vm1 STRATA-READY; then fail "vm1 booted again on $dst"; fi
# It kept its CPU: the target's QEMU runs the same model.
[ "$(api GET /api/v1/vms/vm1 | jq -r .status.cpu_model)" = "$baseline" ] ||
  fail "vm1 runs with CPU $(api GET /api/v1/vms/vm1 | jq -r .status.cpu_model) on $dst, not $baseline"
# One to the host it is on is refused.
api POST /api/v1/vms/vm1/migrate "{\"host\":\"$dst\"}" >"$WORK/mig-same.json"
[ "$(last_status)" = 400 ] || fail "migrating to the VM's own host: HTTP $(last_status) $(cat "$WORK/mig-same.json")"

# ---- a rolling upgrade of vm1's host's agent: post-copy needs API level 2 on both hosts,
# so it is refused while vm1's host is behind; the agent is upgraded in place (restarted at
# this build's level) while vm1 runs, and vm1's QEMU is the same process afterwards.
api POST /api/v1/vms/vm1/migrate "{\"host\":\"h$((di % 3 + 1))\",\"postcopy\":true}" >"$WORK/mig-pc-old.json"
[ "$(last_status)" = 409 ] && [ "$(jq -r .error.field "$WORK/mig-pc-old.json")" = postcopy ] ||
  fail "post-copy from an agent at level 1: HTTP $(last_status) $(cat "$WORK/mig-pc-old.json")"
grep -q "host $dst's agent speaks API level 1" "$WORK/mig-pc-old.json" ||
  fail "the post-copy refusal does not name $dst: $(cat "$WORK/mig-pc-old.json")"
qemu_pid() { "$STRATA_AGENT" ctl --socket "$WORK/h$1/agent.sock" --timeout 10 -o json vm show "$2" | jq -r .pid; }
pid_before=$(qemu_pid "$di" vm1)
stop_agent "$di"
restart_agent "$di"
wait_for 30 "$dst's agent upgraded to API level 2" levels_are "$dst" 2 ||
  fail "$dst's agent levels after the upgrade: $(host_levels "$dst") (wanted 2 2)"
[ "$(qemu_pid "$di" vm1)" = "$pid_before" ] || fail "vm1's QEMU changed across the agent upgrade: $pid_before -> $(qemu_pid "$di" vm1)"
[ "$(vm_state vm1)" = running ] || fail "vm1 is $(vm_state vm1) after its agent's upgrade"
api GET "/api/v1/events?target=host/$dst&limit=100" | jq -e '[.events[] | select(.action == "host.agent_level")] | length >= 1' >/dev/null ||
  fail "no host.agent_level event for $dst"
log "$dst's agent upgraded in place (API level 1 -> 2) with vm1 running, QEMU pid $pid_before kept"

# ---- post-copy (asked for): vm1 moves on with --postcopy, its local disk mirrored first;
# the guest switches over at once (TCG) and the target fetches its memory afterwards.
# QEMU runs as strata-qemu: the targets need userfaultfd for that user (what an operator
# sets on hosts that take post-copy), set for this step only.
uffd_old=$(cat /proc/sys/vm/unprivileged_userfaultfd)
psrc=$dst
pdi=$((di % 3 + 1))
pdst=h$pdi
send_line "$di" vm1 'echo PC-$((60+1)) >/tmp/pcmark; echo PCMARK$((1+1))ED'
wait_for 60 "vm1 marked for post-copy" console_has "$di" vm1 PCMARK2ED || fail "vm1 did not run the post-copy marking command"
echo 1 >/proc/sys/vm/unprivileged_userfaultfd
rc=0
"${cli[@]}" vm migrate vm1 --to "$pdst" --postcopy --wait --wait-timeout 5m >"$WORK/migrate-pc.out" 2>&1 || rc=$?
echo "$uffd_old" >/proc/sys/vm/unprivileged_userfaultfd
[ "$rc" = 0 ] || fail "strata vm migrate vm1 --postcopy: $(tail -5 "$WORK/migrate-pc.out")"
task=$(api GET "/api/v1/tasks?limit=10000" | jq -c '[.tasks[] | select(.kind == "vm.migrate")] | last')
[ "$(jq -r .result.postcopy <<<"$task")" = true ] || fail "vm1's migration did not switch over in post-copy: $task"
[ "$(api GET /api/v1/vms/vm1 | jq -r .host)" = "$pdst" ] || fail "vm1 is on $(api GET /api/v1/vms/vm1 | jq -r .host), not $pdst"
wait_for 60 "vm1 removed from $psrc" only_on vm1 "$pdst" || fail "vm1 is defined on [$(defined_on vm1)] after the post-copy migration"
send_line "$pdi" vm1 'cat /tmp/pcmark /tmp/mark; echo PCCHECK$((2+3))ED'
wait_for 60 "vm1 answers on $pdst" console_has "$pdi" vm1 PCCHECK5ED || fail "vm1 does not answer on $pdst after post-copy"
console_has "$pdi" vm1 PC-61 || fail "vm1's memory did not come along in post-copy (no /tmp/pcmark)"
console_has "$pdi" vm1 RAM-42 || fail "vm1's older memory did not come along in post-copy (no /tmp/mark)"
if console_has "$pdi" vm1 STRATA-READY; then fail "vm1 booted again on $pdst"; fi
log "vm1 migrated $psrc -> $pdst in post-copy: $(jq -c '{message, result: (.result | {downtime_ms, postcopy, total_ms, phases_ms})}' <<<"$task")"
dst=$pdst
di=$pdi

# ---- the manager is killed (-9) while a migration copies; restarted, it finishes it once
m=vm4
msrc=$(api GET "/api/v1/vms/$m" | jq -r .host)
mdi=$((${msrc#h} % 3 + 1))
mdst=h$mdi
# 16 MiB/s: the ~90 MiB copy takes seconds, long enough to kill the manager inside it.
api POST "/api/v1/vms/$m/migrate" "{\"host\":\"$mdst\",\"max_bandwidth\":16777216}" >"$WORK/mig4.json"
[ "$(last_status)" = 202 ] || fail "migrate $m: HTTP $(last_status) $(cat "$WORK/mig4.json")"
mtask=$(jq -r .task.id "$WORK/mig4.json")
copying() { [ "$(api GET "/api/v1/vms/$m" | jq -r '.status.migration.phase // ""')" = copying ]; }
wait_for 60 "$m copying" copying || fail "$m never reached the copy: $(api GET "/api/v1/vms/$m" | jq -c .status)"
kill -9 "$MGR_PID"; wait "$MGR_PID" 2>/dev/null || true
log "stratad killed while $m copies ($msrc -> $mdst)"
start_stratad "$WORK/mgr" "$MGR_IP:$PORT" "${MGR_ARGS[@]}"
task_ended() { [ "$(api GET "/api/v1/tasks/$mtask" | jq -r .state)" != running ] &&
  [ "$(api GET "/api/v1/tasks/$mtask" | jq -r .state)" != pending ]; }
wait_for 180 "$m migration ends after the restart" task_ended || fail "task: $(api GET "/api/v1/tasks/$mtask")"
[ "$(api GET "/api/v1/tasks/$mtask" | jq -r .state)" = succeeded ] ||
  fail "migration across a manager crash: $(api GET "/api/v1/tasks/$mtask" | jq -c '{state, message}')"
[ "$(api GET "/api/v1/vms/$m" | jq -r .host)" = "$mdst" ] || fail "$m is not on $mdst after the restart"
wait_for 30 "$m removed from $msrc" only_on "$m" "$mdst" || fail "$m is defined on [$(defined_on "$m")], not $mdst only"
st=$("$STRATA_AGENT" ctl --socket "$WORK/$mdst/agent.sock" -o json vm show "$m" | jq -r .state)
[ "$st" = VM_STATE_RUNNING ] || fail "$m on $mdst is $st"
log "$m migrated across a manager crash: $(api GET "/api/v1/tasks/$mtask" | jq -c '{message}')"

# ---- the kill matrix, agents: the source host's agent, then the target host's, killed -9
# while a migration copies, and started again. Whichever way the migration ends, the VM
# runs on exactly one host, once, and the record says which.
for victim in source target; do
  msrc=$(api GET "/api/v1/vms/$m" | jq -r .host)
  msi=${msrc#h}
  mdi=$((msi % 3 + 1))
  mdst=h$mdi
  vi=$msi
  [ "$victim" = target ] && vi=$mdi
  api POST "/api/v1/vms/$m/migrate" "{\"host\":\"$mdst\",\"max_bandwidth\":16777216}" >"$WORK/mig-kill-$victim.json"
  [ "$(last_status)" = 202 ] || fail "migrate $m: HTTP $(last_status) $(cat "$WORK/mig-kill-$victim.json")"
  mtask=$(jq -r .task.id "$WORK/mig-kill-$victim.json")
  wait_for 60 "$m copying" copying || fail "$m never reached the copy: $(api GET "/api/v1/vms/$m" | jq -c .status)"
  kill -9 "${AGENT_PIDS[$((vi - 1))]}"
  wait "${AGENT_PIDS[$((vi - 1))]}" 2>/dev/null || true
  log "the $victim agent (h$vi) killed while $m copies ($msrc -> $mdst)"
  sleep 2
  restart_agent "$vi"
  wait_for 180 "$m migration ends after the $victim agent's restart" task_ended ||
    fail "task: $(api GET "/api/v1/tasks/$mtask" | jq -c '{state, message}')"
  mhost=$(api GET "/api/v1/vms/$m" | jq -r .host)
  [ "$mhost" = "$msrc" ] || [ "$mhost" = "$mdst" ] || fail "$m ended on $mhost"
  wait_for 120 "$m running on $mhost" vm_is "$m" running ||
    fail "$m after the $victim agent's kill: $(api GET "/api/v1/vms/$m" | jq -c '{host, status}')"
  wait_for 60 "$m defined on $mhost only" only_on "$m" "$mhost" ||
    fail "$m is defined on [$(defined_on "$m")], its record says $mhost"
  [ "$(qemu_of "$m")" = 1 ] || fail "$m: $(qemu_of "$m") QEMU processes after the $victim agent's kill"
  log "$victim agent killed mid-copy: $m runs on $mhost only; task $(api GET "/api/v1/tasks/$mtask" | jq -c '{state, message}')"
done

# ---- a migration cancelled while it copies (1 MiB/s: it would take minutes): the VM stays
# on its host, running; the task says who cancelled; nothing is left on the target.
m=vm5
msrc=$(api GET "/api/v1/vms/$m" | jq -r .host)
mdst=h$((${msrc#h} % 3 + 1))
api POST "/api/v1/vms/$m/migrate" "{\"host\":\"$mdst\",\"max_bandwidth\":1048576}" >"$WORK/mig5.json"
[ "$(last_status)" = 202 ] || fail "migrate $m: HTTP $(last_status) $(cat "$WORK/mig5.json")"
mtask=$(jq -r .task.id "$WORK/mig5.json")
wait_for 60 "$m copying" copying || fail "$m never reached the copy: $(api GET "/api/v1/vms/$m" | jq -c .status)"
# While it copies, a second migration that shares a host with it waits in line (one per
# host here), says why in its task, and starts once the first ends.
q=$(vms_json | jq -r --arg a "$msrc" --arg b "$mdst" --arg m "$m" \
  '[.vms[] | select((.host == $a or .host == $b) and .name != $m) | .name] | first')
[ -n "$q" ] && [ "$q" != null ] || fail "no second VM on $msrc or $mdst"
qdst=h$((6 - ${msrc#h} - ${mdst#h}))
api POST "/api/v1/vms/$q/migrate" "{\"host\":\"$qdst\"}" >"$WORK/migq.json"
[ "$(last_status)" = 202 ] || fail "migrate $q: HTTP $(last_status) $(cat "$WORK/migq.json")"
qtask=$(jq -r .task.id "$WORK/migq.json")
queued() { api GET "/api/v1/tasks/$qtask" | jq -r .message | grep -q "^queued: host h[0-9] runs 1 migration (limit 1 per host)"; }
wait_for 30 "$q's migration queued" queued || fail "$q's migration: $(api GET "/api/v1/tasks/$qtask" | jq -c '{state, message}')"
[ "$(api GET "/api/v1/tasks/$qtask" | jq -r .state)" = pending ] || fail "queued task: $(api GET "/api/v1/tasks/$qtask")"
log "$q's migration to $qdst waits: $(api GET "/api/v1/tasks/$qtask" | jq -c '{state, message}')"
"${cli[@]}" vm migrate "$m" --cancel >"$WORK/cancel5.out" 2>&1 || fail "strata vm migrate --cancel: $(cat "$WORK/cancel5.out")"
wait_for 90 "$m migration ends after the cancel" task_ended || fail "task: $(api GET "/api/v1/tasks/$mtask")"
ctask=$(api GET "/api/v1/tasks/$mtask")
[ "$(jq -r .state <<<"$ctask")" = failed ] && jq -r .message <<<"$ctask" | grep -q "cancelled by token:" ||
  fail "cancelled migration's task: $(jq -c '{state, message}' <<<"$ctask")"
[ "$(api GET "/api/v1/vms/$m" | jq -r .host)" = "$msrc" ] || fail "$m left $msrc after the cancel"
wait_for 30 "$m running on $msrc" vm_is "$m" running || fail "$m after the cancel: $(api GET "/api/v1/vms/$m" | jq -c .status)"
"$STRATA_AGENT" ctl --socket "$WORK/$mdst/agent.sock" -o json vm show "$m" >/dev/null 2>&1 &&
  fail "$m is still defined on the target $mdst after the cancel"
log "$m migration cancelled while copying: $(jq -c '{message}' <<<"$ctask")"
qended() { local st; st=$(api GET "/api/v1/tasks/$qtask" | jq -r .state); [ "$st" = succeeded ] || [ "$st" = failed ]; }
wait_for 180 "$q's queued migration ends" qended || fail "$q's task: $(api GET "/api/v1/tasks/$qtask")"
[ "$(api GET "/api/v1/tasks/$qtask" | jq -r .state)" = succeeded ] && [ "$(api GET "/api/v1/vms/$q" | jq -r .host)" = "$qdst" ] ||
  fail "$q's queued migration: $(api GET "/api/v1/tasks/$qtask" | jq -c '{state, message}'), on $(api GET "/api/v1/vms/$q" | jq -r .host)"
log "$q migrated to $qdst after the line moved on"

# ---- what-if, through the CLI: h3's VMs fit elsewhere; room for more small VMs, not huge ones
"${cli[@]}" plan host-down h3 >"$WORK/plan-down.out" 2>&1 ||
  fail "strata plan host-down h3: $(cat "$WORK/plan-down.out")"
"${cli[@]}" plan capacity --add '2 x 1c64M' >"$WORK/plan-cap.out" 2>&1 ||
  fail "strata plan capacity --add 2 x 1c64M: $(cat "$WORK/plan-cap.out")"
grep -q "^all 2 fit" "$WORK/plan-cap.out" || fail "plan capacity: $(cat "$WORK/plan-cap.out")"
rc=0; "${cli[@]}" plan capacity --add '1 x 1c1T' >"$WORK/plan-big.out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "memory runs out first" "$WORK/plan-big.out" ||
  fail "plan capacity of a 1 TiB VM (exit $rc): $(cat "$WORK/plan-big.out")"
log "what-if: $(head -1 "$WORK/plan-down.out"); $(head -1 "$WORK/plan-cap.out")"

# ---- maintenance evacuation: h3's running VMs migrate away, two at a time; h3 ends empty
evac_vms=$(vms_json | jq -r '[.vms[] | select(.host == "h3") | .name] | join(" ")')
[ -n "$evac_vms" ] || fail "no VMs on h3 to evacuate"
"${cli[@]}" host evacuate h3 --wait --wait-timeout 5m >"$WORK/evacuate.out" 2>&1 ||
  fail "strata host evacuate h3: $(tail -5 "$WORK/evacuate.out")"
[ "$(host_state h3)" = maintenance ] || fail "h3 is $(host_state h3) after the evacuation"
[ "$(vms_json | jq '[.vms[] | select(.host == "h3")] | length')" = 0 ] ||
  fail "VMs still on h3: $(vms_json | jq -c '[.vms[] | {name, host}]')"
left=$("$STRATA_AGENT" ctl --socket "$WORK/h3/agent.sock" -o json vm list | jq '.vms | length')
[ "$left" = 0 ] || fail "h3's agent still has $left VMs after the evacuation"
wait_for 60 "6 VMs running after the evacuation" all_running ||
  fail "after the evacuation: $(vms_json | jq -c '[.vms[] | {name, host, s: .status.state}]')"
etask=$(api GET "/api/v1/tasks?limit=10000" | jq -c '[.tasks[] | select(.kind == "host.evacuate")] | last')
[ "$(jq -r .state <<<"$etask")" = succeeded ] || fail "evacuation task: $etask"
log "h3 evacuated ($evac_vms): $(jq -c '{message}' <<<"$etask")"
"${cli[@]}" host maintenance h3 off >/dev/null || fail "maintenance off"
wait_for 30 "h3 up" host_is h3 up || fail "h3 is $(host_state h3) after maintenance off"

# ---- cut h2's link: host unreachable, its VMs unknown but still listed
victim=h2
victim_vms=$(vms_json | jq -r --arg h "$victim" '[.vms[] | select(.host == $h) | .name] | join(" ")')
[ -n "$victim_vms" ] || fail "no VMs on $victim"
ip link set st-v2 down
log "link of $victim cut (st-v2 down); its VMs: $victim_vms"
wait_for 120 "$victim unreachable" host_is $victim unreachable ||
  fail "$victim is '$(host_state $victim)', not unreachable"
vms_unknown() {
  local v
  for v in $victim_vms; do [ "$(api GET "/api/v1/vms/$v" | jq -r .status.state)" = unknown ] || return 1; done
}
wait_for 120 "VMs unknown" vms_unknown ||
  fail "VMs of $victim: $(vms_json | jq -c '[.vms[] | {name, host, s: .status.state}]')"
[ "$(vms_json | jq '.vms | length')" = 6 ] || fail "VMs vanished from the list while $victim was cut off"
for h in h1 h3; do [ "$(host_state $h)" = up ] || fail "$h is not up while $victim is cut off"; done
others_running=$(vms_json | jq --arg h "$victim" '[.vms[] | select(.host != $h and .status.state == "running")] | length')
log "$victim unreachable; its VMs unknown: $(vms_json | jq -c --arg h "$victim" '[.vms[] | select(.host == $h) | {name, s: .status.state}]'); others running: $others_running"
[ "$others_running" = $((6 - $(wc -w <<<"$victim_vms"))) ] || fail "VMs on the healthy hosts are not all running"
# The VMs kept running on the cut-off host (the agent is fine, only the link is down).
for v in $victim_vms; do
  st=$("$STRATA_AGENT" ctl --socket "$WORK/h2/agent.sock" -o json vm show "$v" | jq -r .state)
  [ "$st" = VM_STATE_RUNNING ] || fail "$v stopped on the cut-off host ($st)"
done

# ---- restore: host up again, its VMs running again
ip link set st-v2 up
log "link of $victim restored"
wait_for 120 "$victim up" host_is $victim up || fail "$victim is '$(host_state $victim)' after the link came back"
wait_for 120 "6 VMs running again" all_running ||
  fail "after restore: $(vms_json | jq -c '[.vms[] | {name, host, s: .status.state}]')"
log "$victim up again, all 6 VMs running"

# ---- an agent restart does not enroll again (the join token is spent)
kill "${AGENT_PIDS[1]}"; wait "${AGENT_PIDS[1]}" 2>/dev/null || true
ip netns exec st-h2 "$STRATA_AGENT" serve --state-dir "$WORK/h2" --images "$WORK/h2/images" \
  --listen "unix:$WORK/h2/agent.sock" --listen-tcp "$(host_ip 2):$AGENT_PORT" --accel tcg \
  --manager "$API_URL" --advertise "$(host_ip 2):$AGENT_PORT" --name h2 --datastore "shared=$WORK/datastore" \
  >>"$WORK/h2/agent.log" 2>&1 &
AGENT_PIDS[1]=$!
wait_for 60 "restarted agent logs" grep -q "already enrolled" "$WORK/h2/agent.log" ||
  fail "restarted agent did not find its enrollment"
wait_for 120 "h2 up after agent restart" host_is h2 up || fail "h2 not up after agent restart"
[ "$(api GET /api/v1/hosts | jq '.hosts | length')" = 3 ] || fail "host count changed after restart"
wait_for 120 "6 VMs running after agent restart" all_running || fail "VMs not running after agent restart"

# ---- an agent pinned to another CA refuses the manager's answer: no certificate, no serving
jt=$(api POST /api/v1/join-tokens '{"ttl_s":600}' | jq -r .token)
mkdir -p "$WORK/rogue"
rc=0
ip netns exec st-h3 timeout 60 "$STRATA_AGENT" serve --state-dir "$WORK/rogue" \
  --listen "unix:$WORK/rogue/agent.sock" --listen-tcp "$(host_ip 3):7701" --accel tcg \
  --manager "$API_URL" --join-token "$jt" --name h9 \
  --ca-fingerprint "sha256:$(printf '0%.0s' {1..64})" >"$WORK/rogue/agent.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "agent with a wrong CA pin: exit $rc (want an error)"
grep -q "refusing to trust" "$WORK/rogue/agent.log" || fail "no refusal: $(tail -3 "$WORK/rogue/agent.log")"
[ ! -e "$WORK/rogue/tls/host.key" ] && [ ! -e "$WORK/rogue/enrollment.json" ] ||
  fail "the agent stored credentials from a manager it did not trust"
api DELETE /api/v1/hosts/h9 >/dev/null || true
log "an agent pinned to another CA refused to enroll (exit $rc)"

# ---- HA: a host is cut off; it is fenced (its fence agent "powers it off", status confirms
# off), then its HA VM restarts on another host, once; non-HA VMs wait for the host. The
# host powered on again does not run the old copy.
# vm-ha's disk is on the datastore: it survives its host (the guest writes a block before
# the failure and reads it back on the host it restarts on).
api POST /api/v1/vms "$(vm_body vm-ha true ', disks: [{name: "root", image: "tiny-base", boot: true, datastore: "shared"}], ha: {enabled: true, priority: 100}')" \
  >"$WORK/create-vm-ha.json"
[ "$(last_status)" = 202 ] || fail "create vm-ha: HTTP $(last_status) $(cat "$WORK/create-vm-ha.json")"
api POST /api/v1/vms "$(vm_body vm-nha true ', disks: [{name: "root", image: "tiny-base", boot: true}], ha: {enabled: true}')" \
  >"$WORK/create-vm-nha.json"
[ "$(last_status)" = 400 ] && [ "$(jq -r .error.field "$WORK/create-vm-nha.json")" = ha ] ||
  fail "HA VM with a writable local disk: HTTP $(last_status) $(cat "$WORK/create-vm-nha.json")"
wait_for 120 "vm-ha running" vm_is vm-ha running || fail "vm-ha: $(api GET /api/v1/vms/vm-ha | jq -c .status)"
ha_from=$(api GET /api/v1/vms/vm-ha | jq -r .host)
ha_i=${ha_from#h}
# QEMU processes of a guest, anywhere on this machine (its shim's command line carries
# QEMU's too: count only the QEMUs).
qemu_copies() { qemu_of vm-ha; }
[ "$(qemu_copies)" = 1 ] || fail "vm-ha: $(qemu_copies) QEMU processes before the failure"
ha_uuid=$(api GET /api/v1/vms/vm-ha | jq -r .spec.uuid)
ha_disk=$WORK/datastore/vms/$ha_uuid/root.qcow2
[ -f "$ha_disk" ] || fail "vm-ha's disk is not on the datastore ($ha_disk): $(find "$WORK/datastore" | head)"
[ "$(api GET /api/v1/vms/vm-ha | jq -r '.spec.disks[0].datastore_id')" = "$(jq -r .uuid "$WORK/datastore/.strata-datastore")" ] ||
  fail "vm-ha's disk does not record the datastore's UUID"
wait_for 120 "vm-ha ready" console_ready "$ha_i" vm-ha || fail "vm-ha: no STRATA-READY"
send_line "$ha_i" vm-ha 'echo HADISK-$((60+1)) | dd of=/dev/vda bs=512 seek=90000 conv=fsync; echo HAMARK$((1+1))ED'
wait_for 60 "vm-ha marked its disk" console_has "$ha_i" vm-ha HAMARK2ED || fail "vm-ha did not write its disk"
# A VM that is not HA beside it, on the same host.
api POST /api/v1/vms "$(vm_body vm-peer true ", host: \"$ha_from\"")" >"$WORK/create-vm-peer.json"
[ "$(last_status)" = 202 ] || fail "create vm-peer: HTTP $(last_status) $(cat "$WORK/create-vm-peer.json")"
wait_for 120 "vm-peer running" vm_is vm-peer running || fail "vm-peer: $(api GET /api/v1/vms/vm-peer | jq -c .status)"
ha_peers=$(vms_json | jq -r --arg h "$ha_from" '[.vms[] | select(.host == $h and .name != "vm-ha") | .name] | join(" ")')
ip link set "st-v$ha_i" down
t0=$(date +%s%N)
log "HA: link of $ha_from cut (vm-ha and [$ha_peers] on it)"
ha_moved() {
  local j
  j=$(api GET /api/v1/vms/vm-ha)
  [ "$(jq -r .status.state <<<"$j")" = running ] && [ "$(jq -r .host <<<"$j")" != "$ha_from" ] &&
    [ "$(jq -r .host <<<"$j")" != null ]
}
wait_for 120 "vm-ha restarted elsewhere" ha_moved ||
  fail "vm-ha after $ha_from failed: $(api GET /api/v1/vms/vm-ha | jq -c '{host, status}'); events: $(api GET "/api/v1/events?target=host/$ha_from&limit=20" | jq -c '[.events[] | {action, message}]')"
ha_ms=$((($(date +%s%N) - t0) / 1000000))
ha_to=$(api GET /api/v1/vms/vm-ha | jq -r .host)
[ -z "$(ip netns pids "st-h$ha_i")" ] || fail "$ha_from still runs processes after it was fenced"
[ "$(qemu_copies)" = 1 ] || fail "vm-ha: $(qemu_copies) QEMU processes after the restart (want 1)"
timeline=$( (api GET "/api/v1/events?target=host/$ha_from&limit=50"; api GET "/api/v1/events?target=vm/vm-ha&limit=50") |
  jq -sc '[.[].events[]] | sort_by(.seq) | [.[] | select(.action | test("^host\\.|ha_restart")) | .action]')
for a in host.unreachable host.failed host.fencing host.fenced vm.ha_restart; do
  grep -q "\"$a\"" <<<"$timeline" || fail "HA timeline lacks $a: $timeline"
done
for v in $ha_peers; do
  [ "$(api GET "/api/v1/vms/$v" | jq -r .host)" = "$ha_from" ] || fail "non-HA $v left $ha_from"
done
log "HA: vm-ha running on $ha_to ${ha_ms} ms after $ha_from was cut off; timeline $timeline"
# The same disk: what the guest wrote on the failed host is there.
ha_ti=${ha_to#h}
wait_for 120 "vm-ha ready on $ha_to" console_ready "$ha_ti" vm-ha || fail "vm-ha: no STRATA-READY on $ha_to"
send_line "$ha_ti" vm-ha 'dd if=/dev/vda bs=512 skip=90000 count=1 2>/dev/null | head -c 9; echo; echo HACHECK$((2+3))ED'
wait_for 60 "vm-ha answers on $ha_to" console_has "$ha_ti" vm-ha HACHECK5ED || fail "vm-ha does not answer on $ha_to"
console_has "$ha_ti" vm-ha HADISK-61 || fail "vm-ha's disk write on $ha_from is not on $ha_to (datastore disk not reused)"
log "HA: the block vm-ha wrote on $ha_from reads back on $ha_to (datastore disk)"
# Power on: the link back and the agent started again. Its old copy of vm-ha is removed
# without running; its other VMs (their QEMUs died with the power) start again there.
ip link set "st-v$ha_i" up
restart_agent "$ha_i"
wait_for 120 "$ha_from up after power on" host_is "$ha_from" up || fail "$ha_from not up after power on"
stale_gone() {
  ! "$STRATA_AGENT" ctl --socket "$WORK/$ha_from/agent.sock" -o json vm list | jq -e '.vms[] | select(.name == "vm-ha")' >/dev/null
}
wait_for 60 "the old vm-ha copy removed from $ha_from" stale_gone || fail "$ha_from still holds vm-ha"
[ "$(qemu_copies)" = 1 ] || fail "vm-ha: $(qemu_copies) QEMU processes after $ha_from came back"
[ "$(api GET /api/v1/vms/vm-ha | jq -r .host)" = "$ha_to" ] || fail "vm-ha moved again"
# Its other VMs lost their QEMU with the power: they are seen stopped (crashed) there and
# are not started anywhere else (not HA: as vSphere, they wait for an operator).
peers_seen_down() {
  local v st
  for v in $ha_peers; do
    st=$(vm_state "$v")
    case $st in crashed | stopped) ;; *) return 1 ;; esac
  done
}
wait_for 60 "[$ha_peers] seen down on $ha_from" peers_seen_down ||
  fail "after power on: $(vms_json | jq -c '[.vms[] | {name, host, s: .status.state}]')"
for v in $ha_peers; do
  [ "$(qemu_of "$v")" = 0 ] || fail "$v runs somewhere after $ha_from lost power"
done
log "HA: $ha_from back; its old vm-ha copy removed, not started; [$ha_peers] seen down there, started nowhere"
grep -q vm.stale_copy_removed <<<"$(api GET "/api/v1/events?target=vm/vm-ha&limit=20")" ||
  fail "no vm.stale_copy_removed event for vm-ha"
[ -f "$ha_disk" ] || fail "removing the stale copy on $ha_from deleted the datastore disk"
# Live migration of a VM whose disk is on the datastore: RAM only, no disk mirror.
# Unencrypted on request (--no-tls), recorded in the task.
"${cli[@]}" vm migrate vm-ha --no-tls --wait --wait-timeout 3m >"$WORK/migrate-ha.out" 2>&1 ||
  fail "strata vm migrate vm-ha --no-tls: $(tail -5 "$WORK/migrate-ha.out")"
ha_mig=$(api GET /api/v1/vms/vm-ha | jq -r .host)
[ "$ha_mig" != "$ha_to" ] && [ "$(vm_state vm-ha)" = running ] || fail "vm-ha after migrate: on $ha_mig, $(vm_state vm-ha)"
task=$(api GET "/api/v1/tasks?limit=10000" | jq -c '[.tasks[] | select(.kind == "vm.migrate")] | last')
ha_mi=${ha_mig#h}
grep "incoming migration ready vm=vm-ha " "$WORK/$ha_mig/agent.log" | tail -1 | grep -q "nbd=:$" ||
  fail "vm-ha's migration exported disks over NBD: $(grep "incoming migration ready vm=vm-ha " "$WORK/$ha_mig/agent.log" | tail -1)"
touch "$WORK/ha-mig-done"
[ "$(jq -r .result.tls <<<"$task")" = false ] || fail "vm-ha's --no-tls migration: $task"
send_line "$ha_mi" vm-ha 'dd if=/dev/vda bs=512 skip=90000 count=1 2>/dev/null | head -c 9; echo; echo HAMIG$((3+4))ED'
wait_for 60 "vm-ha answers on $ha_mig" console_has "$ha_mi" vm-ha HAMIG7ED || fail "vm-ha does not answer on $ha_mig"
[ -f "$ha_disk" ] || fail "the migration's source deleted the datastore disk"
log "HA: vm-ha migrated $ha_to -> $ha_mig over the datastore: $(jq -c '{message, result}' <<<"$task")"

# ---- HA without a fence: vm-ha's host loses its agent (killed) and then its link, and its
# power controller is dead too (its fence fails). Nothing on the host hears the manager any
# more, so vm-ha's lease is not renewed: its shim stops QEMU once the lease has run out, and
# the manager, once the lease plus its margin has passed, restarts vm-ha elsewhere, once.
lease_from=$ha_mig lease_i=$ha_mi
# vm-ha arrived on $lease_from moments ago: it holds a lease there only once a heartbeat has
# granted it and the agent has confirmed it (written ha-lease). Before that, losing the host
# rightly leaves it waiting for a fence (the manager cannot know QEMU will stop), so wait for
# the first grant on the new host, then a beat for the manager to record the confirmation.
lease_granted() { [ -n "$(find "$WORK/$lease_from" -path '*vm-ha*' -name ha-lease -newer "$WORK/ha-mig-done" 2>/dev/null | head -1)" ]; }
wait_for 30 "vm-ha's lease granted on $lease_from" lease_granted || fail "vm-ha got no lease on $lease_from"
sleep 1
touch "$WORK/fence-dead-$lease_from"
t0=$(date +%s%N)
kill -9 "${AGENT_PIDS[$((lease_i - 1))]}"
ip link set "st-v$lease_i" down
log "HA lease: $lease_from lost its agent and its link, and its fence device is dead; vm-ha on it"
lease_moved() {
  local j
  j=$(api GET /api/v1/vms/vm-ha) || return 1
  [ "$(jq -r .status.state <<<"$j")" = running ] && [ "$(jq -r .host <<<"$j")" != "$lease_from" ]
}
wait_for $((HA_LEASE_S + 90)) "vm-ha restarted after its lease ran out" lease_moved ||
  fail "vm-ha after $lease_from lost agent, link and fence: $(api GET /api/v1/vms/vm-ha | jq -c '{host, status}'); events: $(api GET "/api/v1/events?target=host/$lease_from&limit=20" | jq -c '[.events[] | {action, message}]')"
lease_ms=$((($(date +%s%N) - t0) / 1000000))
lease_to=$(api GET /api/v1/vms/vm-ha | jq -r .host)
[ "$(qemu_copies)" = 1 ] || fail "vm-ha: $(qemu_copies) QEMU processes after the lease restart (want 1)"
# The shim on the cut-off host stopped the old copy, and before the manager restarted it.
expired_file=$(find "$WORK/$lease_from" -name ha-lease-expired | head -1)
[ -n "$expired_file" ] || fail "no ha-lease-expired on $lease_from: its shim did not stop vm-ha"
expired_ms=$(tr -dc 0-9 <"$expired_file")
lease_events=$( (api GET "/api/v1/events?target=host/$lease_from&limit=50"; api GET "/api/v1/events?target=vm/vm-ha&limit=50") |
  jq -sc '[.[].events[]] | sort_by(.seq)')
restart_ms=$(jq '[.[] | select(.action == "vm.ha_restart")] | last | .time_ms' <<<"$lease_events")
[ "$expired_ms" -lt "$restart_ms" ] ||
  fail "vm-ha was restarted ($restart_ms) before its shim on $lease_from stopped it ($expired_ms)"
for a in host.fence_failed host.leases_expired; do
  jq -e --arg a "$a" --argjson t "$(( t0 / 1000000 ))" 'any(.[]; .action == $a and .time_ms >= $t)' <<<"$lease_events" >/dev/null ||
    fail "lease timeline lacks $a: $(jq -c '[.[] | {action, time_ms}]' <<<"$lease_events")"
done
jq -e --argjson t "$(( t0 / 1000000 ))" 'any(.[]; .action == "host.fenced" and .time_ms >= $t) | not' <<<"$lease_events" >/dev/null ||
  fail "$lease_from was reported fenced although its fence device was dead"
log "HA lease: vm-ha running on $lease_to ${lease_ms} ms after the cut; its shim stopped the old copy $((restart_ms - expired_ms)) ms before the restart"
# The host comes back: its agent reports the lease's exit, and removes its old copy.
rm -f "$WORK/fence-dead-$lease_from"
ip link set "st-v$lease_i" up
restart_agent "$lease_i"
wait_for 120 "$lease_from up again" host_is "$lease_from" up || fail "$lease_from not up after it came back"
ha_from=$lease_from
wait_for 60 "the old vm-ha copy removed from $lease_from" stale_gone || fail "$lease_from still holds vm-ha"
[ "$(qemu_copies)" = 1 ] && [ "$(api GET /api/v1/vms/vm-ha | jq -r .host)" = "$lease_to" ] ||
  fail "after $lease_from came back: $(qemu_copies) copies, vm-ha on $(api GET /api/v1/vms/vm-ha | jq -r .host)"
api DELETE /api/v1/vms/vm-ha >/dev/null
wait_for 60 "vm-ha's datastore folder deleted with it" test ! -e "$WORK/datastore/vms/$ha_uuid" ||
  fail "deleting vm-ha left $WORK/datastore/vms/$ha_uuid"
api DELETE /api/v1/vms/vm-peer >/dev/null

# ---- load balancing: two stopped VMs pinned to the busiest host (held there, but their
# vCPUs count) unbalance the fleet; the plan moves running VMs off that host, `strata
# balance apply --wait` migrates them live, and the imbalance drops.
busiest=$(vms_json | jq -r '[.vms[] | select(.status.state == "running") | .host] | group_by(.) |
  max_by(length) | .[0]')
for n in bal1 bal2; do
  api POST /api/v1/vms "$(vm_body "$n" false ", host: \"$busiest\"")" >/dev/null
  [ "$(last_status)" = 202 ] || fail "create $n on $busiest: HTTP $(last_status)"
done
"${cli[@]}" -o json balance plan >"$WORK/balance-plan.json" || fail "strata balance plan: $(cat "$WORK/balance-plan.json")"
bal_moves=$(jq '.moves | length' "$WORK/balance-plan.json")
[ "$bal_moves" -gt 0 ] || fail "no balance move with two more vCPUs on $busiest: $(jq -c . "$WORK/balance-plan.json")"
jq -e --arg h "$busiest" 'all(.moves[]; .from == $h) and any(.held[]; .vm == "bal1")' "$WORK/balance-plan.json" >/dev/null ||
  fail "balance plan: $(jq -c '{moves, held}' "$WORK/balance-plan.json")"
"${cli[@]}" balance apply --wait --wait-timeout 3m >"$WORK/balance-apply.out" 2>&1 ||
  fail "strata balance apply --wait: $(tail -5 "$WORK/balance-apply.out")"
for v in $(jq -r '.moves[].vm' "$WORK/balance-plan.json"); do
  want=$(jq -r --arg v "$v" '.moves[] | select(.vm == $v) | .to' "$WORK/balance-plan.json")
  [ "$(api GET "/api/v1/vms/$v" | jq -r .host)" = "$want" ] && [ "$(vm_state "$v")" = running ] ||
    fail "balanced $v: on $(api GET "/api/v1/vms/$v" | jq -r .host) ($(vm_state "$v")), planned $want"
  [ "$(qemu_of "$v")" = 1 ] || fail "balanced $v: $(qemu_of "$v") QEMU processes"
done
bal_after=$("${cli[@]}" -o json balance plan | jq .imbalance)
awk -v a="$bal_after" -v b="$(jq .imbalance "$WORK/balance-plan.json")" 'BEGIN { exit !(a < b) }' ||
  fail "imbalance did not drop: $(jq .imbalance "$WORK/balance-plan.json") -> $bal_after"
log "balance: $bal_moves move(s) off $busiest, imbalance $(jq .imbalance "$WORK/balance-plan.json") -> $bal_after: $(jq -c '[.moves[] | "\(.vm) \(.from)->\(.to)"]' "$WORK/balance-plan.json")"
api DELETE /api/v1/vms/bal1 >/dev/null
api DELETE /api/v1/vms/bal2 >/dev/null

# ---- cold migration: a stopped VM with its disk on the datastore moves to another host
# (defined there, removed here, the disk kept), then starts there.
api POST /api/v1/vms "$(vm_body vm-cold false ', disks: [{name: "root", image: "tiny-base", boot: true, datastore: "shared"}]')" >"$WORK/create-cold.json"
[ "$(last_status)" = 202 ] || fail "create vm-cold: HTTP $(last_status) $(cat "$WORK/create-cold.json")"
cold_defined() { case $(vm_state vm-cold) in stopped | defined) return 0 ;; esac; return 1; }
wait_for 60 "vm-cold defined" cold_defined || fail "vm-cold: $(api GET /api/v1/vms/vm-cold | jq -c .status)"
cold_from=$(api GET /api/v1/vms/vm-cold | jq -r .host)
cold_uuid=$(api GET /api/v1/vms/vm-cold | jq -r .spec.uuid)
"${cli[@]}" vm migrate vm-cold --wait --wait-timeout 2m >"$WORK/migrate-cold.out" 2>&1 ||
  fail "strata vm migrate vm-cold (stopped): $(tail -5 "$WORK/migrate-cold.out")"
cold_to=$(api GET /api/v1/vms/vm-cold | jq -r .host)
[ "$cold_to" != "$cold_from" ] || fail "vm-cold stayed on $cold_from"
wait_for 30 "vm-cold removed from $cold_from" only_on vm-cold "$cold_to" ||
  fail "vm-cold is defined on [$(defined_on vm-cold)] after the cold migration to $cold_to"
[ -f "$WORK/datastore/vms/$cold_uuid/root.qcow2" ] || fail "the cold migration lost vm-cold's datastore disk"
[ "$(qemu_of vm-cold)" = 0 ] || fail "vm-cold runs after a cold migration"
"${cli[@]}" vm start vm-cold --wait --wait-timeout 2m >"$WORK/start-cold.out" 2>&1 ||
  fail "strata vm start vm-cold on $cold_to: $(tail -5 "$WORK/start-cold.out")"
wait_for 120 "vm-cold ready on $cold_to" console_ready "${cold_to#h}" vm-cold || fail "vm-cold did not boot on $cold_to"
log "cold migration: vm-cold $cold_from -> $cold_to (stopped, datastore disk), then started there"
api DELETE /api/v1/vms/vm-cold >/dev/null

# Cold migration with a local disk: the overlay's own clusters are copied to the target,
# where they read through the target's copy of tiny-base.
api POST /api/v1/vms "$(vm_body vm-coldl false ', disks: [{name: "root", image: "tiny-base", boot: true}]')" >"$WORK/create-coldl.json"
[ "$(last_status)" = 202 ] || fail "create vm-coldl: HTTP $(last_status) $(cat "$WORK/create-coldl.json")"
coldl_defined() { case $(vm_state vm-coldl) in stopped | defined) return 0 ;; esac; return 1; }
wait_for 60 "vm-coldl defined" coldl_defined || fail "vm-coldl: $(api GET /api/v1/vms/vm-coldl | jq -c .status)"
coldl_from=$(api GET /api/v1/vms/vm-coldl | jq -r .host)
coldl_src="$WORK/$coldl_from/images/vms/vm-coldl/root.qcow2"
[ -f "$coldl_src" ] || fail "vm-coldl's local disk is not at $coldl_src"
qemu-io -f qcow2 -c 'write -P 0x5a 4M 192k' "$coldl_src" >/dev/null || fail "qemu-io write into $coldl_src"
cp "$coldl_src" "$WORK/coldl-before.qcow2"
"${cli[@]}" vm migrate vm-coldl --wait --wait-timeout 2m >"$WORK/migrate-coldl.out" 2>&1 ||
  fail "strata vm migrate vm-coldl (stopped, local disk): $(tail -5 "$WORK/migrate-coldl.out")"
coldl_to=$(api GET /api/v1/vms/vm-coldl | jq -r .host)
[ "$coldl_to" != "$coldl_from" ] || fail "vm-coldl stayed on $coldl_from"
wait_for 30 "vm-coldl removed from $coldl_from" only_on vm-coldl "$coldl_to" ||
  fail "vm-coldl is defined on [$(defined_on vm-coldl)] after the cold migration to $coldl_to"
coldl_dst="$WORK/$coldl_to/images/vms/vm-coldl/root.qcow2"
qemu-img compare -q -f qcow2 -F qcow2 "$WORK/coldl-before.qcow2" "$coldl_dst" ||
  fail "vm-coldl's disk on $coldl_to differs from the one on $coldl_from"
qemu-img info --output=json "$coldl_dst" | jq -e --arg b "$WORK/$coldl_to/images/images/tiny-base" \
  '."backing-filename" == $b' >/dev/null ||
  fail "vm-coldl's disk on $coldl_to is not backed by that host's tiny-base: $(qemu-img info "$coldl_dst" | grep backing)"
log "cold migration: vm-coldl $coldl_from -> $coldl_to (stopped, local disk copied: $(grep -o '[0-9]* MiB)' "$WORK/migrate-coldl.out" | head -1))"
api DELETE /api/v1/vms/vm-coldl >/dev/null

# ---- delete everything through the API
for n in 1 2 3 4 5 6; do api DELETE "/api/v1/vms/vm$n" >/dev/null; done
wait_for 180 "VMs deleted" vm_count_is 0 || fail "VMs not deleted"
for i in 1 2 3; do
  left=$("$STRATA_AGENT" ctl --socket "$WORK/h$i/agent.sock" -o json vm list | jq '.vms | length')
  [ "$left" = 0 ] || fail "h$i still has $left VMs after delete"
done
log "PASS multi-host netns e2e"
