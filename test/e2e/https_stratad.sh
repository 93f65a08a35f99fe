#!/usr/bin/env bash
# stratad on loopback serves HTTPS by default, with its own CA (no VMs, a few seconds); only
# --insecure-http serves plain HTTP. curl and the strata CLI trusting DATA_DIR/pki/ca.crt are served; without it, or trusting another CA, they are
# refused (curl exit 60, CLI exit 6 "not trusted"); plain HTTP to the port gets no answer;
# `strata events --follow` (SSE) streams over TLS; a strata-agent enrolls over https with
# the join token's ca_fingerprint, and one with a wrong fingerprint is refused. Label: e2e.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_tools curl jq openssl
need_binaries
[ -x "$STRATA_CLI" ] || skip "strata CLI not built ($STRATA_CLI)"

PORT=$(free_port)
WORK=$(mktemp -d /tmp/strata-e2e-https.XXXXXX)
MGR_PID=
AGENT_PID=
FOLLOW_PID=
cleanup() {
  local rc=$?
  set +e
  if [ $rc -ne 0 ] && [ $rc -ne $SKIP_RC ]; then
    echo "--- stratad log (tail) ---" >&2; tail -20 "$WORK/mgr/stratad.log" >&2
    [ -f "$WORK/agent.log" ] && { echo "--- agent log (tail) ---" >&2; tail -10 "$WORK/agent.log" >&2; }
  fi
  for p in $FOLLOW_PID $AGENT_PID $MGR_PID; do kill "$p" 2>/dev/null; done
  for p in $FOLLOW_PID $AGENT_PID $MGR_PID; do wait "$p" 2>/dev/null; done
  e2e_finish $rc
}
trap cleanup EXIT

start_stratad "$WORK/mgr" "127.0.0.1:$PORT"  # no flag: HTTPS is the default
CA=$WORK/mgr/pki/ca.crt
unset CURL_CA_BUNDLE STRATA_CA_FILE  # each check below names the CA it trusts, or none
[[ $API_URL == https://* ]] || fail "expected an https URL, got $API_URL"
grep -q "API https://127.0.0.1:$PORT" "$WORK/mgr/stratad.log" || fail "stratad did not print its https URL"
log "stratad serves $API_URL"

# curl: the right CA is accepted, no CA (system store) and another CA are refused.
[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$API_URL/healthz")" = 200 ] ||
  fail "curl --cacert ca.crt was not served"
rc=0; curl -s -o /dev/null "$API_URL/healthz" || rc=$?
[ "$rc" = 60 ] || fail "curl without the CA: exit $rc, expected 60 (certificate not trusted)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=other-ca -keyout "$WORK/other.key" -out "$WORK/other.crt" >/dev/null 2>&1
rc=0; curl -s -o /dev/null --cacert "$WORK/other.crt" "$API_URL/healthz" || rc=$?
[ "$rc" = 60 ] || fail "curl with another CA: exit $rc, expected 60"
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" || true)
[ "$code" != 200 ] || fail "plain HTTP to the https port was answered 200"
log "curl: right CA 200, no CA / other CA refused (60), plain HTTP not answered"

# The strata CLI: --ca-file and STRATA_CA_FILE accepted; no CA or another CA: exit 6.
cli() { env STRATA_SERVER="$API_URL" STRATA_TOKEN="$TOKEN" "$STRATA_CLI" "$@"; }
cli --ca-file "$CA" host list >/dev/null || fail "strata --ca-file host list"
STRATA_CA_FILE=$CA cli -o json host list >/dev/null || fail "STRATA_CA_FILE host list"
rc=0; cli host list >"$WORK/cli.out" 2>&1 || rc=$?
[ "$rc" = 6 ] && grep -q "not trusted" "$WORK/cli.out" ||
  fail "strata without a CA: exit $rc, expected 6 'not trusted': $(cat "$WORK/cli.out")"
rc=0; cli --ca-file "$WORK/other.crt" host list >"$WORK/cli.out" 2>&1 || rc=$?
[ "$rc" = 6 ] || fail "strata with another CA: exit $rc, expected 6: $(cat "$WORK/cli.out")"
log "strata CLI: right CA ok, no CA / other CA exit 6"

# SSE over TLS: events --follow sees the join token created after it started.
cli --ca-file "$CA" -o json events --follow >"$WORK/follow.out" 2>"$WORK/follow.err" &
FOLLOW_PID=$!
sleep 1
JT=$(api POST /api/v1/join-tokens '{"ttl_s":600}')
[ "$(last_status)" = 201 ] || fail "join token: HTTP $(last_status)"
follow_saw_token() { grep -q "join" "$WORK/follow.out"; }
wait_for 15 "event over SSE" follow_saw_token ||
  fail "events --follow over TLS saw nothing: $(cat "$WORK/follow.out" "$WORK/follow.err")"
kill "$FOLLOW_PID" 2>/dev/null; wait "$FOLLOW_PID" 2>/dev/null || true; FOLLOW_PID=
log "strata events --follow streams over TLS"

# Enrollment over https: a wrong CA fingerprint is refused before the token is sent; the
# join token's ca_fingerprint enrolls.
FP=$(jq -r .ca_fingerprint <<<"$JT")
TOK=$(jq -r .token <<<"$JT")
[[ $FP == sha256:* ]] || fail "join token has no ca_fingerprint: $JT"
BAD_FP="sha256:$(printf '0%.0s' $(seq 64))"
mkdir -p "$WORK/agent/images"
rc=0
timeout 60 "$STRATA_AGENT" serve --state-dir "$WORK/agent" --images "$WORK/agent/images" \
  --listen "unix:$WORK/agent/agent.sock" --accel tcg --manager "$API_URL" --join-token "$TOK" \
  --ca-fingerprint "$BAD_FP" --advertise "unix:$WORK/agent/agent.sock" --name https-host \
  >"$WORK/agent-bad.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "agent with a wrong fingerprint: exit $rc"
grep -q "fingerprint" "$WORK/agent-bad.log" || fail "agent refusal does not name the fingerprint: $(tail -5 "$WORK/agent-bad.log")"
"$STRATA_AGENT" serve --state-dir "$WORK/agent" --images "$WORK/agent/images" \
  --listen "unix:$WORK/agent/agent.sock" --accel tcg --manager "$API_URL" --join-token "$TOK" \
  --ca-fingerprint "$FP" --advertise "unix:$WORK/agent/agent.sock" --name https-host \
  >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
host_up() { [ "$(api GET /api/v1/hosts/https-host | jq -r .state)" = up ]; }
wait_for 60 "host up" host_up || fail "agent did not enroll over https: $(api GET /api/v1/hosts)"
log "strata-agent enrolled over https with the CA fingerprint; a wrong one was refused"

# Plain HTTP only when asked for.
PORT2=$(free_port)
mkdir -p "$WORK/mgr2"
"$STRATAD" --data-dir "$WORK/mgr2" --listen "127.0.0.1:$PORT2" --insecure-http \
  >"$WORK/mgr2.log" 2>&1 &
PLAIN_PID=$!
MGR_PID="$MGR_PID $PLAIN_PID"
plain_up() { curl -sf -m 2 "http://127.0.0.1:$PORT2/healthz"; }
wait_for 30 "plain stratad" plain_up || fail "stratad --insecure-http did not serve plain HTTP: $(tail -5 "$WORK/mgr2.log")"
grep -q "API http://127.0.0.1:$PORT2" "$WORK/mgr2.log" || fail "stratad --insecure-http printed no http URL"
log "stratad --insecure-http serves plain HTTP"
echo "PASSED"
