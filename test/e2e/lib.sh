# Shared helpers for the e2e scripts (sourced): binaries, the REST API over curl, waiting.
# Expects STRATAD, STRATA_AGENT (paths) in the environment or next to each other in BIN_DIR.

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
: "${STRATAD:=${BIN_DIR:-$REPO/build/src/exe}/stratad}"
: "${STRATA_AGENT:=$(dirname "$STRATAD")/strata-agent}"
: "${STRATA_CLI:=$(dirname "$STRATAD")/strata}"
SKIP_RC=77

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
skip() { echo "SKIPPED: $*" >&2; exit $SKIP_RC; }
fail() { echo "FAILED: $*" >&2; exit 1; }

need_tools() {
  local t
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || skip "$t is not installed (scripts/setup)"; done
}

# need_debian_image: the guest images' manifest sourced (DEBIAN_KERNEL, DEBIAN_INITRD,
# DEBIAN_DISK, DEBIAN_CMDLINE, ...), or SKIPPED when the Debian image is not built.
need_debian_image() {
  local manifest=${STRATA_IMAGES:-$REPO/.cache/images}/manifest.env
  [ -f "$manifest" ] || skip "no guest images ($manifest); run scripts/guest-images debian"
  # shellcheck disable=SC1090
  . "$manifest"
  [ -f "${DEBIAN_KERNEL:-}" ] && [ -f "${DEBIAN_INITRD:-}" ] && [ -f "${DEBIAN_DISK:-}" ] ||
    skip "Debian guest image files missing; run scripts/guest-images debian"
}

need_binaries() {
  [ -x "$STRATAD" ] || skip "stratad not built ($STRATAD)"
  [ -x "$STRATA_AGENT" ] || skip "strata-agent not built ($STRATA_AGENT)"
}

# Sources the guest-image manifest (TINY_KERNEL, TINY_INITRD, TINY_BASE, TINY_CMDLINE).
need_tiny_images() {
  local manifest=${STRATA_IMAGES:-$REPO/.cache/images}/manifest.env
  [ -f "$manifest" ] || skip "no guest images ($manifest); run scripts/guest-images tiny"
  # shellcheck disable=SC1090
  . "$manifest"
  [ -f "${TINY_KERNEL:-}" ] && [ -f "${TINY_INITRD:-}" ] && [ -f "${TINY_BASE:-}" ] ||
    skip "tiny guest image files missing; run scripts/guest-images tiny"
}

# api METHOD PATH [BODY] -> prints the body; the status goes to $API_STATUS_FILE (read it
# with `last_status`; works inside pipelines and $(...)). Uses API_URL and TOKEN.
API_STATUS_FILE=$(mktemp /tmp/strata-e2e-status.XXXXXX)
last_status() { cat "$API_STATUS_FILE"; }
api() {
  local method=$1 path=$2 body=${3:-} out
  local args=(-sS -m 30 -X "$method" -H "Authorization: Bearer $TOKEN" -w '\n%{http_code}')
  [ -n "${API_CA:-}" ] && args+=(--cacert "$API_CA")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  out=$(curl "${args[@]}" "$API_URL$path" 2>/dev/null) || { echo 000 >"$API_STATUS_FILE"; return 1; }
  echo "${out##*$'\n'}" >"$API_STATUS_FILE"
  printf '%s' "${out%$'\n'*}"
}

# wait_for SECONDS DESCRIPTION CMD... : polls CMD every second until it succeeds.
# free_port: a TCP port no socket on this machine uses now. Chosen below the kernel's
# ephemeral range (net.ipv4.ip_local_port_range, 32768.. by default), so that no outgoing
# connection of another process can take it between this choice and the bind; a port in
# that range collided with one (stratad: "Address already in use").
free_port() {
  local port lo=32768 hi
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  [ "$lo" -gt 21024 ] || lo=32768  # an odd range: stay in the usual one
  while :; do
    port=$((20000 + RANDOM % (lo - 20000)))
    if command -v ss >/dev/null; then
      [ -z "$(ss -Htan "( sport = :$port )" 2>/dev/null)" ] && { echo "$port"; return; }
    else
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    fi
  done
}
wait_for() {
  local secs=$1 what=$2 i
  shift 2
  for ((i = 0; i < secs; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

# ---- cleanup pieces shared by the tests' EXIT traps
# e2e_logs_on_failure RC LINES NAME=FILE...: when RC is a failure (not 0, not skip), the
# tail of each log, labelled.
e2e_logs_on_failure() {
  local rc=$1 lines=$2 kv
  shift 2
  [ "$rc" -ne 0 ] && [ "$rc" -ne "$SKIP_RC" ] || return 0
  for kv in "$@"; do
    [ -f "${kv#*=}" ] || continue
    echo "--- ${kv%%=*} log (tail) ---" >&2
    tail -n "$lines" "${kv#*=}" >&2
  done
}
# e2e_remove_agent_vms SOCKET [undefine]: forces off every VM the agent on SOCKET knows
# (their shims outlive the agent, so killing the agent alone leaves QEMUs behind), and
# undefines them too with "undefine".
e2e_remove_agent_vms() {
  local sock=$1 undefine=${2:-} vm
  [ -S "$sock" ] || return 0
  for vm in $("$STRATA_AGENT" ctl --socket "$sock" --timeout 10 -o json vm list 2>/dev/null |
    jq -r '.vms[]?.spec.name // empty' 2>/dev/null); do
    "$STRATA_AGENT" ctl --socket "$sock" --timeout 20 vm force-off "$vm" >/dev/null 2>&1
    [ "$undefine" = undefine ] &&
      "$STRATA_AGENT" ctl --socket "$sock" --timeout 20 vm undefine "$vm" >/dev/null 2>&1
  done
  return 0
}
# e2e_kill_leftovers DIR: SIGKILLs every process whose command line names a path under DIR
# (a shim, a QEMU, an agent), and says which. The tests' cleanups stop what they started, but
# a manager still running while its VMs are removed may start one again (its desired state
# says running); DIR is the test's own mktemp folder, so tests running beside it are safe.
e2e_kill_leftovers() {
  local dir=$1 f pid
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  for f in $(grep -lsaF -- "$dir/" /proc/[0-9]*/cmdline); do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] && continue
    grep -qsaF -- "$dir/" "$f" || continue  # gone by now (the grep above itself, say)
    echo "cleanup: a leftover process under $dir: $pid $(tr '\0' ' ' <"$f" 2>/dev/null | cut -c1-120)" >&2
    kill -9 "$pid" 2>/dev/null
  done
  return 0
}
# e2e_finish RC: stops leftovers under $WORK, removes the status file and $WORK (kept with
# E2E_KEEP=1), exits RC.
e2e_finish() {
  e2e_kill_leftovers "${WORK:-}"
  rm -f "$API_STATUS_FILE"
  [ -z "${E2E_KEEP:-}" ] && [ -n "${WORK:-}" ] && rm -rf "$WORK"
  exit "$1"
}
# The EXIT trap of an all-in-one test: e2e_allinone_cleanup RC LINES NAME=FILE... shows the
# logs' tails on failure, removes the local agent's VMs (at $SOCK), stops stratad (MGR_PID),
# then e2e_finish.
e2e_allinone_cleanup() {
  local rc=$1 lines=$2
  shift 2
  set +e
  e2e_logs_on_failure "$rc" "$lines" "$@"
  e2e_remove_agent_vms "$SOCK" undefine
  [ -n "${MGR_PID:-}" ] && kill "$MGR_PID" 2>/dev/null
  wait 2>/dev/null
  e2e_finish "$rc"
}

# Starts stratad in the background: start_stratad DATA_DIR LISTEN [ARGS...]; sets MGR_PID,
# API_URL, TOKEN (admin) once /healthz answers. stratad serves HTTPS unless ARGS hold
# --insecure-http, or --all-in-one on a loopback address without --https (stratad's own
# rule). For HTTPS, API_CA is DATA_DIR/pki/ca.crt, exported as CURL_CA_BUNDLE (every curl
# of the test trusts it) and STRATA_CA_FILE (the CLI does).
start_stratad() {
  local dir=$1 listen=$2 a scheme=https aio=0 https=0
  shift 2
  mkdir -p "$dir"
  "$STRATAD" --data-dir "$dir" --listen "$listen" "$@" >>"$dir/stratad.log" 2>&1 &
  MGR_PID=$!
  for a in "$@"; do
    case $a in
      --insecure-http) scheme=http ;;
      --all-in-one) aio=1 ;;
      --https | --tls-cert) https=1 ;;
    esac
  done
  case $listen in 127.* | localhost:* | "[::1]":*)
    [ "$aio" = 1 ] && [ "$https" = 0 ] && scheme=http ;;
  esac
  API_URL="$scheme://$listen"
  API_CA=""
  if [ "$scheme" = https ]; then
    API_CA="$dir/pki/ca.crt"
    export CURL_CA_BUNDLE=$API_CA STRATA_CA_FILE=$API_CA
  fi
  local i
  for ((i = 0; i < 120; i++)); do
    if curl -sf -m 2 ${API_CA:+--cacert "$API_CA"} "$API_URL/healthz" >/dev/null 2>&1 &&
      [ -s "$dir/admin.token" ]; then
      TOKEN=$(tr -d '[:space:]' <"$dir/admin.token")
      return 0
    fi
    kill -0 "$MGR_PID" 2>/dev/null || { tail -20 "$dir/stratad.log" >&2; fail "stratad exited"; }
    sleep 0.5
  done
  tail -20 "$dir/stratad.log" >&2
  fail "stratad did not answer on $API_URL"
}

# vm_body NAME [START] [EXTRA_JSON_FIELDS]: a tiny guest, 128 MiB, user NIC.
vm_body() {
  local name=$1 start=${2:-true} extra=${3:-}
  jq -cn --arg n "$name" --arg c "$TINY_CMDLINE" --argjson s "$start" "{name: \$n, vcpus: 1,
    memory_mib: 128, kernel: \"tiny-kernel\", initrd: \"tiny-initrd\", cmdline: \$c,
    disks: [{name: \"root\", image: \"tiny-base\", boot: true}], nics: [{mode: \"user\"}],
    start: \$s $extra}"
}

# The tiny guest's kernel, initrd and base disk into stratad's image catalog with
# `strata image import` (streamed upload). Hosts get them from the manager when a VM needs
# them. Uses API_URL and TOKEN.
import_catalog_images() {
  [ -x "$STRATA_CLI" ] || fail "strata CLI not built ($STRATA_CLI)"
  local cli=(env STRATA_SERVER="$API_URL" STRATA_TOKEN="$TOKEN" "$STRATA_CLI")
  "${cli[@]}" image import tiny-kernel "$TINY_KERNEL" --kind kernel >/dev/null 2>&1 &&
    "${cli[@]}" image import tiny-initrd "$TINY_INITRD" --kind initrd >/dev/null 2>&1 &&
    "${cli[@]}" image import tiny-base "$TINY_BASE" --kind disk >/dev/null 2>&1
}

import_tiny_images() {
  local images=$1
  "$STRATA_AGENT" image import tiny-kernel "$TINY_KERNEL" --images "$images" >/dev/null &&
    "$STRATA_AGENT" image import tiny-initrd "$TINY_INITRD" --images "$images" >/dev/null &&
    "$STRATA_AGENT" image import tiny-base "$TINY_BASE" --images "$images" >/dev/null
}

# One agent on this machine, on the UNIX socket $SOCK, its images imported locally, enrolled
# with a fresh join token: start_local_agent HOST_NAME WAIT_SECONDS. Sets AGENT_PID; the
# agent's state is $WORK/agent, its log $WORK/agent.log. Fails unless the host comes up.
start_local_agent() {
  local name=$1 secs=$2 jt
  mkdir -p "$WORK/agent/images"
  import_tiny_images "$WORK/agent/images" || fail "image import"
  jt=$(api POST /api/v1/join-tokens '{"ttl_s":600}')
  [ "$(last_status)" = 201 ] || fail "join token: HTTP $(last_status)"
  # The agent pins the manager's CA by the fingerprint the join token carries.
  "$STRATA_AGENT" serve --state-dir "$WORK/agent" --images "$WORK/agent/images" \
    --listen "unix:$SOCK" --accel tcg --manager "$API_URL" --join-token "$(jq -r .token <<<"$jt")" \
    --ca-fingerprint "$(jq -r .ca_fingerprint <<<"$jt")" \
    --advertise "unix:$SOCK" --name "$name" >"$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
  local_host_up() { [ "$(api GET "/api/v1/hosts/$1" | jq -r .state)" = up ]; }
  wait_for "$secs" "host up" local_host_up "$name" ||
    fail "agent did not come up: $(api GET /api/v1/hosts)"
}

# ---- hosts as network namespaces on one bridge (multi-host benchmarks)
# The caller defines `host_ip I` (host I's address, 1-based) and sets WORK, API_URL and
# AGENT_PORT. AGENT_PIDS[I-1] holds host I's agent.
# netns_pool_up BRIDGE MANAGER_IP VETH_PREFIX NS...: the bridge in the root namespace, with
# MANAGER_IP/24 (where stratad listens), and for namespace I the veth VETH_PREFIX<I> on the
# bridge, its peer the namespace's eth0 with `host_ip I`.
netns_pool_up() {
  local br=$1 mgr_ip=$2 vp=$3 i=0 ns
  shift 3
  netns_pool_down "$br" "$vp" "$@"
  ip link add "$br" type bridge && ip addr add "$mgr_ip/24" dev "$br" && ip link set "$br" up ||
    return 1
  for ns in "$@"; do
    i=$((i + 1))
    ip netns add "$ns" && ip link add "$vp$i" type veth peer name eth0 netns "$ns" &&
      ip link set "$vp$i" master "$br" up && ip -n "$ns" addr add "$(host_ip "$i")/24" dev eth0 &&
      ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up || return 1
  done
}
# netns_pool_down BRIDGE VETH_PREFIX NS...: every process in the namespaces killed, the
# namespaces, their veths and the bridge removed.
netns_pool_down() {
  local br=$1 vp=$2 i=0 ns p
  shift 2
  for ns in "$@"; do
    i=$((i + 1))
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    ip link del "$vp$i" 2>/dev/null
  done
  ip link del "$br" 2>/dev/null
  return 0
}
# netns_agent I NS [enroll] [AGENT_ARGS...]: strata-agent for host hI in namespace NS, its
# state in $WORK/hI, log $WORK/hI/agent.log (appended), listening on `host_ip I`:AGENT_PORT;
# with "enroll" it first gets a join token (pinning the manager's CA by its fingerprint).
netns_agent() {
  local i=$1 ns=$2 dir=$WORK/h$1 jt enroll=()
  shift 2
  if [ "${1:-}" = enroll ]; then
    shift
    jt=$(api POST /api/v1/join-tokens '{"ttl_s":600}')
    [ "$(last_status)" = 201 ] || { echo "join token: HTTP $(last_status) $jt" >&2; return 1; }
    enroll=(--join-token "$(jq -r .token <<<"$jt")" --ca-fingerprint "$(jq -r .ca_fingerprint <<<"$jt")")
  fi
  mkdir -p "$dir"
  ip netns exec "$ns" "$STRATA_AGENT" serve --state-dir "$dir" --images "$dir/images" \
    --listen "unix:$dir/agent.sock" --listen-tcp "$(host_ip "$i"):$AGENT_PORT" --accel tcg \
    --manager "$API_URL" "${enroll[@]}" --advertise "$(host_ip "$i"):$AGENT_PORT" \
    --name "h$i" "$@" >>"$dir/agent.log" 2>&1 &
  AGENT_PIDS[$((i - 1))]=$!
}
