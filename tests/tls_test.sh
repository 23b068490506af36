#!/usr/bin/env bash
# End-to-end: `vigil serve --tls-cert --tls-key` (HTTPS on OpenSSL, really started). A self-signed
# certificate made here; curl --cacert trusts it, curl without it does not; TLS 1.2 and 1.3
# accepted, TLS 1.1 and TLS 1.2's non-AEAD suites refused; keep-alive over TLS; plain HTTP to the
# HTTPS port told to use https; a certificate or key that does not load stops the start with a
# message naming it (an encrypted key does not prompt); no private key in the logs.
# Usage: tls_test.sh path/to/vigil
set -uo pipefail
VIGIL="$(realpath "$1")"
WORK="$(mktemp -d)"
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
source "$(dirname "$0")/lib.sh"

for tool in openssl curl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found: run scripts/install-deps.sh" >&2; exit 1; }
done

mkdir -p "$WORK/data"
"$VIGIL" simulate --customers 50 --terminals 100 --days 15 --quiet --out "$WORK/tx.csv" >/dev/null
"$VIGIL" train --data "$WORK/tx.csv" --algo gbdt --train-start 2018-04-05 --param n_estimators=5 \
  --out "$WORK/a.model" --quiet >/dev/null || fail "train a model"

# A P-256 certificate for 127.0.0.1 and localhost, and a second key that is not its.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=vigil-test \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
  2>/dev/null || fail "openssl makes a certificate"
chmod 600 "$WORK/key.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/other.pem" 2>/dev/null
openssl pkey -in "$WORK/key.pem" -aes256 -passout pass:secret -out "$WORK/encrypted.pem" 2>/dev/null

PORT=""
start_server() {  # start_server OUT extra-args...: sets SERVER and PORT
  local out="$1"
  shift
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --address 127.0.0.1 --data-dir "$WORK/data" "$@" \
    >"$out" 2>>"$WORK/serve.err" </dev/null &
  SERVER=$!
  for _ in $(seq 100); do
    PORT=$(sed -n 's|.*listening on https://[^:]*:\([0-9]*\).*|\1|p' "$out")
    [ -n "$PORT" ] && return 0
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  fail "the server did not start over TLS: $(tail -3 "$WORK/serve.err")"
  return 1
}

start_server "$WORK/serve.out" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" || { finish; exit 1; }
ADMIN="$(cat "$WORK/data/admin.key")"
URL="https://127.0.0.1:$PORT"
# tls_call CURL-ARGS...: prints the HTTP status, or curl's exit code after "curl:".
tls_call() {
  local code
  code=$(curl -q -s -o "$WORK/resp" -w '%{http_code}' --cacert "$WORK/cert.pem" "$@")
  local rc=$?
  [ "$rc" -eq 0 ] && echo "$code" || echo "curl:$rc"
}

check "the log says https" grep -q '"scheme":"https"' "$WORK/serve.err"
check "curl --cacert: /healthz is 200 over TLS" test "$(tls_call "$URL/healthz")" = 200
check "by name too (localhost is in the certificate)" test "$(tls_call "https://localhost:$PORT/healthz")" = 200
check "without --cacert the self-signed certificate is not trusted (curl 60)" \
  test "$(curl -q -s -o /dev/null "$URL/healthz"; echo $?)" = 60
check "credentials still count over TLS: no key, 401" test "$(tls_call "$URL/v1/admin/keys")" = 401
check "a score over TLS with the admin key: 200" test "$(tls_call -H "Authorization: Bearer $ADMIN" \
  -H 'Content-Type: application/json' --data-binary \
  '{"transaction_id":"s1","customer_id":"c1","terminal_id":"t1","amount":12.5,"timestamp":"2018-05-01T10:00:00Z"}' \
  "$URL/v1/score")" = 200
check "the score's body is the JSON answer" jq -e '.transaction_id == "s1" and (.score | type) == "number"' "$WORK/resp"
check "TLS 1.3: 200" test "$(tls_call --tlsv1.3 "$URL/healthz")" = 200
check "TLS 1.2: 200" test "$(tls_call --tlsv1.2 --tls-max 1.2 "$URL/healthz")" = 200
check "TLS 1.2 with a forward-secret AEAD suite: 200" \
  test "$(tls_call --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256 "$URL/healthz")" = 200
check "TLS 1.2 with a CBC suite only: refused" \
  bash -c "[[ \"\$(curl -q -s -o /dev/null --cacert '$WORK/cert.pem' --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-SHA '$URL/healthz'; echo \$?)\" != 0 ]]"
# The client offers TLS 1.1 at OpenSSL's lowest security level, so that only the server refuses.
check "TLS 1.1: refused by the server" bash -c "! openssl s_client -connect 127.0.0.1:$PORT -tls1_1 \
  -cipher 'DEFAULT@SECLEVEL=0' </dev/null >'$WORK/s11.out' 2>&1"
check "TLS 1.1: the server answered with an alert, not silence" \
  grep -qiE 'alert|wrong version|unsupported protocol|no protocols available' "$WORK/s11.out"
# Two requests in one curl: the second rides the first's TLS connection.
curl -q -s -o /dev/null -o /dev/null -w '%{num_connects}\n' --cacert "$WORK/cert.pem" \
  "$URL/healthz" "$URL/readyz" >"$WORK/connects"
check "keep-alive over TLS: one connection for two requests ($(tr '\n' ' ' <"$WORK/connects"))" \
  test "$(tr '\n' ' ' <"$WORK/connects")" = "1 0 "
plain=$(curl -q -s -o "$WORK/plain" -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")
check "plain HTTP to the HTTPS port: 400 ($plain)" test "$plain" = 400
check "plain HTTP: the JSON error says to use https" \
  jq -e '.error.code == "invalid_argument" and (.error.message | test("https://"))' "$WORK/plain"
# A client that opens a connection and never speaks, and one that sends garbage: the server
# closes them and still answers the next client.
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf '\x16\x03\x01\x00\x05hello' >&3
exec 3>&-
check "after a broken handshake the server still answers" test "$(tls_call "$URL/healthz")" = 200
check "the server never logged the private key" bash -c \
  "! grep -qF '$(sed -n 2p "$WORK/key.pem")' '$WORK/serve.err' '$WORK/serve.out'"
kill -TERM "$SERVER"
wait "$SERVER"
code=$?
check "SIGTERM stops the TLS server cleanly (exit $code)" test "$code" -eq 0
SERVER=""

# --- what stops a start --------------------------------------------------------------------
serve() { "$VIGIL" serve --model "$WORK/a.model" --port 0 --address 127.0.0.1 --data-dir "$WORK/data" "$@" </dev/null; }
expect_error "--tls-cert without --tls-key" "--tls-key" serve --tls-cert "$WORK/cert.pem"
expect_error "a certificate that does not exist is named" "cannot load the TLS certificate $WORK/nope.pem" \
  serve --tls-cert "$WORK/nope.pem" --tls-key "$WORK/key.pem"
expect_error "a key given as the certificate" "cannot load the TLS certificate" \
  serve --tls-cert "$WORK/key.pem" --tls-key "$WORK/key.pem"
expect_error "a key that is not the certificate's" "does not belong to the certificate" \
  serve --tls-cert "$WORK/cert.pem" --tls-key "$WORK/other.pem"
expect_error "an encrypted key fails at once, without a prompt" "an unencrypted PEM key" \
  timeout 20 "$VIGIL" serve --model "$WORK/a.model" --port 0 --address 127.0.0.1 --data-dir "$WORK/data" \
  --tls-cert "$WORK/cert.pem" --tls-key "$WORK/encrypted.pem"

mkdir -p "$WORK/fresh"
"$VIGIL" serve --model "$WORK/a.model" --port 0 --address 127.0.0.1 --data-dir "$WORK/fresh" \
  --tls-cert "$WORK/cert.pem" --tls-key "$WORK/other.pem" </dev/null >/dev/null 2>&1
check "a start that fails on its certificate changes nothing: no key, no store ($(ls "$WORK/fresh" | tr '\n' ' '))" \
  test -z "$(ls -A "$WORK/fresh")"

# A key others may read: the server starts, and warns.
cp "$WORK/key.pem" "$WORK/open.pem"
chmod 644 "$WORK/open.pem"
: >"$WORK/serve.err"
start_server "$WORK/serve2.out" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/open.pem" &&
  check "a key readable by others: a warning naming the fix" grep -q 'chmod 600' "$WORK/serve.err"
kill "$SERVER" 2>/dev/null
wait "$SERVER" 2>/dev/null
SERVER=""

finish
