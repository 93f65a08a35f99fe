#!/usr/bin/env bash
# stratad on a real PostgreSQL 15 (throwaway cluster: initdb/pg_ctl under a temp folder)
# with one real strata-agent and tiny TCG guests: create VMs, kill -9 stratad, start it again
# on the same database, and at once create another VM: it must be accepted (202, not 422
# "no host fits": the restarted manager confirms its hosts before serving). Then: every
# record is in PostgreSQL, store and agent agree one to one, a delete removes the VM from
# both. Runs in well under a minute. Labels: e2e, pg.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_tools curl jq qemu-system-x86_64 qemu-img runuser
need_binaries
need_tiny_images
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] || skip "PostgreSQL 15 is not installed (scripts/setup)"
[ "$(id -u)" = 0 ] || skip "needs root (initdb runs as the postgres user via runuser)"
id postgres >/dev/null 2>&1 || skip "no postgres user (the postgresql package makes it)"

PORT=$(free_port)
PGPORT=$(free_port)
WORK=$(mktemp -d /tmp/strata-e2e-pg.XXXXXX)
chmod 755 "$WORK"
SOCK=$WORK/agent/agent.sock
AGENT_PID=
MGR_PID=
agent_ctl() { "$STRATA_AGENT" ctl --socket "$SOCK" --timeout 20 "$@"; }
psql_q() { runuser -u postgres -- psql -qtAX -h "$WORK/pg" -p "$PGPORT" -U strata strata -c "$1"; }

cleanup() {
  local rc=$?
  set +e
  e2e_logs_on_failure $rc 30 stratad="$WORK/mgr/stratad.log" agent="$WORK/agent.log"
  e2e_remove_agent_vms "$SOCK" undefine
  [ -n "$MGR_PID" ] && kill "$MGR_PID" 2>/dev/null
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null
  wait 2>/dev/null
  [ -d "$WORK/pg/data" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1
  e2e_finish $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- a throwaway PostgreSQL cluster, reached over its UNIX socket
mkdir -p "$WORK/pg"
chown postgres "$WORK/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg/data" -A trust -U strata >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -o "-k $WORK/pg -p $PGPORT -c listen_addresses=''" \
  -l "$WORK/pg/log" -w start >/dev/null
runuser -u postgres -- "$PGBIN/createdb" -h "$WORK/pg" -p "$PGPORT" -U strata strata
DB="postgresql:///strata?host=$WORK/pg&port=$PGPORT&user=strata"
log "postgres up on $WORK/pg:$PGPORT"

mgr_args=(--db "$DB" --heartbeat-ms 500 --miss-threshold 4 --cpu-overcommit 16)
start_stratad "$WORK/mgr" "127.0.0.1:$PORT" "${mgr_args[@]}"

start_local_agent pg-host 120

create() {  # create NAME START -> fails unless 202
  api POST /api/v1/vms "$(vm_body "$1" "$2")" >/dev/null
  [ "$(last_status)" = 202 ] || fail "create $1: HTTP $(last_status)"
}
create a1 true
create a2 false
create a3 false
vm_state() { api GET "/api/v1/vms/$1" | jq -r .status.state; }
settled() {
  [ "$(vm_state a1)" = running ] && [[ "$(vm_state a2)" =~ ^(stopped|defined)$ ]] &&
    [[ "$(vm_state a3)" =~ ^(stopped|defined)$ ]]
}
wait_for 90 "VMs settled" settled || fail "not settled: $(api GET /api/v1/vms | jq -c '[.vms[] | {name, s: .status.state, e: .status.last_error}]')"
log "a1 running, a2 a3 defined; kill -9 stratad"

# ---- crash and restart on the same database; create at once
kill -9 "$MGR_PID"
wait "$MGR_PID" 2>/dev/null || true
start_stratad "$WORK/mgr" "127.0.0.1:$PORT" "${mgr_args[@]}"
api POST /api/v1/vms "$(vm_body a4 false)" >/dev/null
[ "$(last_status)" = 202 ] || fail "create right after the restart: HTTP $(last_status) (want 202)"
log "create right after the restart: 202"

a4_defined() { [[ "$(vm_state a4)" =~ ^(stopped|defined)$ ]]; }
wait_for 60 "a4 defined" a4_defined || fail "a4: $(api GET /api/v1/vms/a4)"
[ "$(vm_state a1)" = running ] || fail "a1 after the restart: $(vm_state a1)"

# ---- store (PostgreSQL) and agent agree
names=$(api GET /api/v1/vms | jq -r '.vms[] | "\(.name) \(.host)"' | sort | tr '\n' ' ')
[ "$names" = "a1 pg-host a2 pg-host a3 pg-host a4 pg-host " ] || fail "VM list: $names"
[ "$(psql_q 'SELECT count(*) FROM vms')" = 4 ] || fail "vms rows in postgres: $(psql_q 'SELECT count(*) FROM vms')"
agent_names=$(agent_ctl -o json vm list | jq -r '.vms[].spec.name' | sort | tr '\n' ' ')
[ "$agent_names" = "a1 a2 a3 a4 " ] || fail "agent runs: $agent_names"

api DELETE /api/v1/vms/a2 >/dev/null
[ "$(last_status)" = 202 ] || fail "delete a2: HTTP $(last_status)"
a2_gone() {
  [ "$(psql_q "SELECT count(*) FROM vms WHERE name = 'a2'")" = 0 ] &&
    ! agent_ctl -o json vm list | jq -e '.vms[] | select(.spec.name == "a2")' >/dev/null
}
wait_for 60 "a2 deleted" a2_gone || fail "a2 not deleted from both"
log "PASSED: stratad on PostgreSQL survives kill -9, accepts work at once, store == agent"
