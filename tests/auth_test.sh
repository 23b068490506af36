#!/usr/bin/env bash
# End-to-end: authentication and authorisation of `vigil serve` (secure by default). The first
# start's admin key; API keys issued by the admin routes and by `vigil keys`, their format, roles,
# expiry, revocation (from another process, while the server runs) and rolling; every route x
# every role x no / malformed / unknown / expired / revoked credentials against the route table;
# bad input; no secret in the logs or in the key store; --auth off.
# Usage: auth_test.sh path/to/vigil
set -uo pipefail
VIGIL="$(realpath "$1")"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup EXIT
source "$(dirname "$0")/lib.sh"

"$VIGIL" simulate --customers 100 --terminals 200 --days 20 --quiet --out "$WORK/tx.csv" >/dev/null
"$VIGIL" train --data "$WORK/tx.csv" --algo gbdt --train-start 2018-04-08 --param n_estimators=10 \
  --out "$WORK/a.model" --quiet >/dev/null || fail "train a model"
DATA="$WORK/data"
mkdir -p "$DATA"

PORT=""
SERVER=""
start_server() {  # start_server OUT extra-args...: sets SERVER and PORT
  local out="$1"
  shift
  : >"$out"
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --address 127.0.0.1 --data-dir "$DATA" "$@" \
    >"$out" 2>>"$WORK/serve.err" &
  SERVER=$!
  PIDS+=("$SERVER")
  for _ in $(seq 100); do
    PORT=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$out")
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  fail "server did not start: $(tail -3 "$WORK/serve.err")"
  return 1
}
stop_server() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }
URL() { echo "http://127.0.0.1:$PORT$1"; }
# call KEY METHOD PATH [BODY]: prints the status; the body is in $WORK/resp. KEY "" sends none.
call() {
  local key="$1" method="$2" path="$3" body="${4-}"
  local args=(-q -s -o "$WORK/resp" -w '%{http_code}' -X "$method")
  [ -n "$key" ] && args+=(-H "Authorization: Bearer $key")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  curl "${args[@]}" "$(URL "$path")"
}
resp() { jq -r "$1" "$WORK/resp" 2>/dev/null; }

# --- the first start: an admin key, shown once, in a file only its owner reads ----------------
# A generous limit of failed authentications: the matrix below makes ~100 from this address.
LIMIT=(--auth-failure-limit 1000/1000)
start_server "$WORK/first.out" "${LIMIT[@]}" || exit 1
ADMIN="$(cat "$DATA/admin.key" 2>/dev/null)"
check "first start: the admin key file holds a key" grep -qE '^vgk_[0-9A-Za-z]{36}$' "$DATA/admin.key"
check "first start: the key file is readable by its owner only" test "$(stat -c %a "$DATA/admin.key")" = 600
check "first start: the key store is readable by its owner only" test "$(stat -c %a "$DATA/auth.db")" = 600
check "first start: stdout (not a terminal here) names the key's file, not the key" \
  bash -c "grep -q 'created an admin API key in .*admin.key' '$WORK/first.out' && ! grep -qF '$ADMIN' '$WORK/first.out'"
check "the admin key works" test "$(call "$ADMIN" GET /v1/admin/keys)" = 200
check "one key at first: the admin's" test "$(resp '.keys | map(.role) | join(",")')" = admin
check "a key's hint, never its secret" bash -c "[ '$(resp '.keys[0].hint')' = 'vgk_...${ADMIN: -4}' ] && ! grep -q '$ADMIN' '$WORK/resp'"
stop_server
start_server "$WORK/second.out" "${LIMIT[@]}" || exit 1
check "a restart prints no key and keeps the admin key" \
  bash -c "! grep -q vgk_ '$WORK/second.out' && [ \"\$(cat '$DATA/admin.key')\" = '$ADMIN' ]"
check "after the restart the admin key still works" test "$(call "$ADMIN" GET /v1/admin/keys)" = 200

# --- keys for every role: through the admin route and through `vigil keys` --------------------
declare -A KEY KEY_ID
KEY[admin]="$ADMIN"
for role in scorer processor analyst; do
  s=$(call "$ADMIN" POST /v1/admin/keys "{\"role\": \"$role\", \"name\": \"test-$role\"}")
  check "POST /v1/admin/keys ($role): 201 ($s)" test "$s" = 201
  KEY[$role]="$(resp .secret)"
  KEY_ID[$role]="$(resp .key.id)"
  check "the $role key's secret has the format" bash -c "grep -qE '^vgk_[0-9A-Za-z]{36}$' <<<'${KEY[$role]}'"
done
KEY[viewer]="$("$VIGIL" keys create --role viewer --name test-viewer --data-dir "$DATA" 2>"$WORK/keys.err")"
check "vigil keys create: a viewer key on stdout" bash -c "grep -qE '^vgk_[0-9A-Za-z]{36}$' <<<'${KEY[viewer]}'"
check "vigil keys create: it says the secret is shown once" grep -q "shown once" "$WORK/keys.err"
# The server picks up a key made by another process within a second or two.
for _ in $(seq 50); do [ "$(call "${KEY[viewer]}" GET /metrics)" = 200 ] && break; sleep 0.1; done
check "a key made by vigil keys works on the running server" test "$(call "${KEY[viewer]}" GET /metrics)" = 200
check "the keys' secrets differ" test "$(printf '%s\n' "${KEY[@]}" | sort -u | wc -l)" = 5

# --- bad input to the key routes: the JSON error naming the field, and no key made ------------
count_keys() { call "$ADMIN" GET /v1/admin/keys >/dev/null; resp '.keys | length'; }
before=$(count_keys)
expect_400() {  # expect_400 DESCRIPTION FIELD BODY
  local s
  s=$(call "$ADMIN" POST /v1/admin/keys "$3")
  check "$1: 400 ($s)" test "$s" = 400
  check "$1: the error names $2" test "$(resp "[.error.details[].field] | index(\"$2\") != null")" = true
}
expect_400 "an unknown role" role '{"role": "root", "name": "x"}'
expect_400 "no role" role '{"name": "x"}'
expect_400 "no name" name '{"role": "scorer"}'
expect_400 "an expiry in the past" expires_at '{"role": "scorer", "name": "x", "expires_at": "2001-01-01T00:00:00Z"}'
expect_400 "an expiry that is not a time" expires_at '{"role": "scorer", "name": "x", "expires_at": "soon"}'
check "a body that is not JSON: 400" test "$(call "$ADMIN" POST /v1/admin/keys 'role=scorer')" = 400
check "bad input made no key" test "$(count_keys)" = "$before"
expect_error "vigil keys create with an unknown role" "unknown role 'root'" \
  "$VIGIL" keys create --role root --name x --data-dir "$DATA"
expect_error "vigil keys revoke of an unknown id" "no API key has that id" \
  "$VIGIL" keys revoke key_doesnotexist0000 --data-dir "$DATA"
check "vigil keys with bad input made no key" test "$(count_keys)" = "$before"

# --- the route table: what the server says is exactly what this test expects ------------------
EXPECTED="$(cat <<'EOF'
DELETE /v1/admin/keys/{id} admin
GET /api/queues viewer
GET /api/queues/{name} viewer
GET /api/queues/{name}/dead-letters analyst
GET /healthz public
GET /metrics viewer
GET /readyz public
GET /v1/admin/audit admin
GET /v1/admin/keys admin
GET /v1/admin/routes admin
GET /v1/transactions/{id} analyst
POST /api/queues/{name}/ack processor
POST /api/queues/{name}/dead-letters/requeue admin
POST /api/queues/{name}/nack processor
POST /api/queues/{name}/pull processor
POST /api/queues/{name}/push scorer,processor
POST /v1/admin/keys admin
POST /v1/admin/keys/{id}/roll admin
POST /v1/admin/reload admin
POST /v1/score scorer
POST /v1/score/batch scorer
EOF
)"
call "$ADMIN" GET /v1/admin/routes >/dev/null
check "the route table is the one expected" \
  diff <(echo "$EXPECTED") <(jq -r '.routes[] | "\(.method) \(.pattern) \(.roles | join(","))"' "$WORK/resp" | sort)

# Expired and revoked keys, and credentials that are not keys at all.
EXPIRING="$("$VIGIL" keys create --role admin --name soon-expired --expires-in 2s --data-dir "$DATA" 2>/dev/null)"
REVOKED="$("$VIGIL" keys create --role admin --name to-revoke --data-dir "$DATA" 2>"$WORK/keys.err")"
REVOKED_ID="$(sed -n 's/.*key \(key_[0-9A-Za-z]*\) .*/\1/p' "$WORK/keys.err")"
for _ in $(seq 50); do [ "$(call "$REVOKED" GET /metrics)" = 200 ] && break; sleep 0.1; done
check "a key in use" test "$(call "$REVOKED" GET /metrics)" = 200
"$VIGIL" keys revoke "$REVOKED_ID" --data-dir "$DATA" >/dev/null || fail "vigil keys revoke"
for i in $(seq 50); do [ "$(call "$REVOKED" GET /metrics)" = 401 ] && break; sleep 0.1; done
check "revoked by vigil keys while in use: refused within 5 s" test "$(call "$REVOKED" GET /metrics)" = 401
# One character changed: the checksum fails. A well-formed key that was never issued.
last="${ADMIN: -1}"
TYPO="${ADMIN:0:39}$([ "$last" = A ] && echo B || echo A)"
UNKNOWN="$("$VIGIL" keys create --role admin --name elsewhere --data-dir "$WORK/other" 2>/dev/null)"
sleep 2.5  # the expiry passes; the revocation reaches the server

# Every route x every role, and each kind of bad credentials on every route that needs any.
admits() {  # admits ROLES ROLE
  [ "$1" = public ] || [ "$2" = admin ] || [[ ",$1," == *",viewer,"* ]] || [[ ",$1," == *",$2,"* ]]
}
concrete() { sed -e 's/{name}/MATRIX/; s/{id}/key_doesnotexist0000/' <<<"$1"; }
body_for() { [ "$1" = POST ] && echo '{}' || echo ''; }
bad=0 good=0 creds=0
while read -r method pattern roles; do
  path="$(concrete "$pattern")"
  body="$(body_for "$method")"
  for role in admin analyst scorer processor viewer; do
    s=$(call "${KEY[$role]}" "$method" "$path" "$body")
    if admits "$roles" "$role"; then
      if [ "$s" = 401 ] || [ "$s" = 403 ]; then
        fail "$method $pattern as $role: $s, but the table admits $role"
        bad=$((bad + 1))
      else
        good=$((good + 1))
      fi
    elif [ "$s" != 403 ] || [ "$(resp .error.code)" != permission_denied ]; then
      fail "$method $pattern as $role: $s, but the table ($roles) does not admit $role"
      bad=$((bad + 1))
    else
      good=$((good + 1))
    fi
  done
  [ "$roles" = public ] && continue
  for cred in none TYPO UNKNOWN EXPIRING REVOKED; do
    case "$cred" in
      none) key="" ;;
      *) key="${!cred}" ;;
    esac
    s=$(call "$key" "$method" "$path" "$body")
    if [ "$s" != 401 ] || [ "$(resp .error.code)" != unauthenticated ]; then
      fail "$method $pattern with $cred credentials: $s $(head -c 200 "$WORK/resp")"
      bad=$((bad + 1))
    else
      creds=$((creds + 1))
    fi
  done
done <<<"$EXPECTED"
check "the matrix: $good route x role calls as the table says, $creds bad credentials refused" \
  test "$bad" = 0 -a "$good" = 105 -a "$creds" = 95
check "the public routes answer without credentials" \
  bash -c "[ \$(curl -q -s -o /dev/null -w '%{http_code}' '$(URL /healthz)') = 200 ] && [ \$(curl -q -s -o /dev/null -w '%{http_code}' '$(URL /readyz)') = 200 ]"

# The reasons, for the logs and the caller; the challenge header.
call "$EXPIRING" GET /metrics >/dev/null
check "an expired key: the error says so" test "$(resp .error.message)" = "the API key has expired"
call "$REVOKED" GET /metrics >/dev/null
check "a revoked key: the error says so" test "$(resp .error.message)" = "the API key was revoked"
call "$TYPO" GET /metrics >/dev/null
check "a mistyped key: refused before any lookup" test "$(resp .error.message)" = "the credentials are not a Vigil API key"
call "${KEY[scorer]}" GET /v1/admin/keys >/dev/null
check "403 names the role and what the route needs" \
  bash -c "grep -q 'the scorer role may not call GET /v1/admin/keys (it needs admin)' '$WORK/resp'"
check "401 carries WWW-Authenticate: Bearer" \
  bash -c "curl -q -s -D - -o /dev/null '$(URL /metrics)' | grep -qi '^WWW-Authenticate: Bearer realm=\"vigil\"'"
check "'Basic' credentials are refused" \
  test "$(curl -q -s -o /dev/null -w '%{http_code}' -u admin:admin "$(URL /metrics)")" = 401
LONG="$(printf '%*s' 20000 '' | tr ' ' a)"
s=$(call "$LONG" GET /metrics)
check "an oversized header: 431 with the JSON error ($s)" \
  bash -c "[ '$s' = 431 ] && [ '$(resp .error.code)' = header_too_large ]"
check "and the server stays up" test "$(call "" GET /healthz)" = 200

# --- revocation and rolling on the running server -----------------------------------------------
s=$(call "${KEY[scorer]}" POST /v1/score '{"transaction_id":"a1","customer_id":"c1","terminal_id":"t1","amount":10,"timestamp":"2018-05-01T10:00:00Z"}')
check "the scorer scores ($s)" test "$s" = 200
s=$(call "$ADMIN" POST "/v1/admin/keys/${KEY_ID[scorer]}/roll" '{"old_key_valid_seconds": 3600}')
check "roll: 201 ($s)" test "$s" = 201
ROLLED="$(resp .secret)"
check "roll: a new secret, the same role and name" \
  bash -c "[ '$ROLLED' != '${KEY[scorer]}' ] && [ '$(resp .key.role)' = scorer ] && [ '$(resp .key.name)' = test-scorer ]"
check "roll: the old key still works for now" test "$(call "${KEY[scorer]}" POST /v1/score/batch '{"transactions": []}')" != 401
check "roll: the new key works" test "$(call "$ROLLED" GET /metrics)" = 200
call "$ADMIN" GET /v1/admin/keys >/dev/null
check "roll: the old key names its successor and ends within the hour" \
  test "$(resp ".keys[] | select(.id == \"${KEY_ID[scorer]}\") | (.rolled_to != null and .expires_at != null)")" = true
s=$(call "$ADMIN" POST "/v1/admin/keys/${KEY_ID[scorer]}/roll" '{"old_key_valid_seconds": -5}')
check "roll with a negative time: 400 ($s)" test "$s" = 400
s=$(call "$ADMIN" DELETE "/v1/admin/keys/${KEY_ID[processor]}")
check "DELETE /v1/admin/keys/{id}: 200 ($s)" test "$s" = 200
check "a key revoked through the API is refused at once" test "$(call "${KEY[processor]}" POST /api/queues/TQ1/pull)" = 401
check "revoking an unknown key: 404" test "$(call "$ADMIN" DELETE /v1/admin/keys/key_doesnotexist0000)" = 404
sleep 1.5  # the last-use times are written every second
call "$ADMIN" GET /v1/admin/keys >/dev/null
check "a key's last use is recorded" \
  test "$(resp ".keys[] | select(.id == \"${KEY_ID[analyst]}\") | .last_used_at != null")" = true
"$VIGIL" keys list --data-dir "$DATA" >"$WORK/list.txt" || fail "vigil keys list"
check "vigil keys list: every key, with its state" \
  bash -c "grep -q 'revoked' '$WORK/list.txt' && grep -q 'expired' '$WORK/list.txt' && grep -q 'test-analyst' '$WORK/list.txt'"

# --- the audit log: key events, reloads, refusals; a hash chain that shows tampering ------------
s=$(call "$ADMIN" POST /v1/admin/reload)
check "a reload as admin ($s)" test "$s" = 200
call "$ADMIN" GET "/v1/admin/audit?limit=1000" >/dev/null
check "audit: the key events, by whom" test "$(resp "[.entries[] | select(.action == \"key.create\" and .actor == \"$(resp '.entries[0].actor')\")] | length > 0")" = true
check "audit: keys created through the API name the admin key" \
  test "$(resp "[.entries[] | select(.action == \"key.create\" and .target == \"${KEY_ID[scorer]}\")][0].actor")" = "$(call "$ADMIN" GET /v1/admin/keys >/dev/null; resp '.keys[0].id')"
call "$ADMIN" GET "/v1/admin/audit?limit=1000" >/dev/null
check "audit: vigil keys' events, as the command line's" test "$(resp '[.entries[] | select(.actor | startswith("cli:"))] | length >= 4')" = true
check "audit: revocations and the roll" test "$(resp '[.entries[] | select(.action == "key.revoke" or .action == "key.roll")] | length >= 3')" = true
check "audit: the reloads (the matrix's and this one)" test "$(resp '[.entries[] | select(.action == "model.reload" and .outcome == "ok")] | length')" = 2
check "audit: failed authentications, with their address and reason" \
  test "$(resp '[.entries[] | select(.action == "auth.failed" and .source == "127.0.0.1" and .detail == "the API key was revoked")] | length > 0')" = true
check "audit: refused roles" test "$(resp '[.entries[] | select(.action == "auth.denied")] | length > 0')" = true
check "audit: paging by sequence number" \
  test "$(call "$ADMIN" GET '/v1/admin/audit?after=2&limit=3' >/dev/null; resp '[.entries[].seq] | join(",")')" = "3,4,5"
check "audit: a bad limit is 400 naming it" \
  bash -c "[ \$(curl -q -s -o '$WORK/resp' -w '%{http_code}' -H 'Authorization: Bearer $ADMIN' '$(URL '/v1/admin/audit?limit=0')') = 400 ] && jq -e '.error.details[0].field == \"limit\"' '$WORK/resp' >/dev/null"
check "audit: only an admin reads it" test "$(call "${KEY[analyst]}" GET /v1/admin/audit)" = 403

# --- no secret anywhere it should not be ---------------------------------------------------------
stop_server
leaks=0
for secret in "${KEY[@]}" "$ROLLED" "$EXPIRING" "$REVOKED" "$TYPO"; do
  if grep -rqF -- "$secret" "$WORK/serve.err" "$WORK/second.out" "$WORK/keys.err" "$WORK/list.txt" "$DATA"/auth.db* "$DATA/audit.log" "$DATA/journal"; then
    leaks=$((leaks + 1))
  fi
done
check "no secret in the logs, the audit log, the key listings or the key store ($leaks found)" test "$leaks" = 0
check "vigil audit verify: the chain is intact" bash -c "'$VIGIL' audit verify --data-dir '$DATA' | grep -q 'audit log intact'"
cp "$DATA/audit.log" "$WORK/audit.bak"
sed -i '3s/"outcome":"ok"/"outcome":"failed"/; 3s/"outcome":"denied"/"outcome":"ok"/' "$DATA/audit.log"
expect_error "vigil audit verify finds an altered entry" "entry 3: altered" "$VIGIL" audit verify --data-dir "$DATA"
cp "$WORK/audit.bak" "$DATA/audit.log"
sed -i '$d' "$DATA/audit.log"
expect_error "vigil audit verify finds an entry cut from the end" "missing from the end" "$VIGIL" audit verify --data-dir "$DATA"
cp "$WORK/audit.bak" "$DATA/audit.log"
check "the log names the failed authentications without the credentials" \
  grep -q '"msg":"authentication failed".*"error":"the API key was revoked"' "$WORK/serve.err"

# --- JWTs: HS256 with a shared secret, RS256 with a public key; pinned algorithms, checked claims -
openssl rand -hex 32 | tr -d '\n' >"$WORK/jwt.secret"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.pem" 2>/dev/null
openssl pkey -in "$WORK/rsa.pem" -pubout -out "$WORK/rsa.pub" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/other.pem" 2>/dev/null
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# jwt ALG PAYLOAD [HEADER]: a token signed as ALG says (HS256 with the secret, RS256 with
# rsa.pem, RS256-OTHER with another key, HS256-PUBKEY with the public key's PEM as the HMAC
# secret, none unsigned).
jwt() {
  local alg="${1%%-*}" header="${3:-}" h p sig
  [ -n "$header" ] || header="{\"alg\":\"$alg\",\"typ\":\"JWT\"}"
  h=$(printf '%s' "$header" | b64url)
  p=$(printf '%s' "$2" | b64url)
  case "$1" in
    HS256) sig=$(printf '%s' "$h.$p" | openssl dgst -sha256 -hmac "$(cat "$WORK/jwt.secret")" -binary | b64url) ;;
    RS256) sig=$(printf '%s' "$h.$p" | openssl dgst -sha256 -sign "$WORK/rsa.pem" -binary | b64url) ;;
    RS256-OTHER) sig=$(printf '%s' "$h.$p" | openssl dgst -sha256 -sign "$WORK/other.pem" -binary | b64url) ;;
    HS256-PUBKEY) sig=$(printf '%s' "$h.$p" | openssl dgst -sha256 -mac HMAC \
      -macopt "hexkey:$(od -An -v -tx1 "$WORK/rsa.pub" | tr -d ' \n')" -binary | b64url) ;;
    none) sig="" ;;
  esac
  echo "$h.$p.$sig"
}
NOW=$(date +%s)
claims() {  # claims ROLE-JSON [EXP-OFFSET] [EXTRA]
  echo "{\"sub\":\"ana@example.com\",\"iss\":\"https://idp.example\",\"aud\":\"vigil\",\"exp\":$((NOW + ${2:-600})),\"iat\":$NOW,\"roles\":$1${3:-}}"
}
start_server "$WORK/jwt.out" "${LIMIT[@]}" --jwt-algorithms HS256,RS256 --jwt-secret-file "$WORK/jwt.secret" \
  --jwt-public-keys "$WORK/rsa.pub" --jwt-issuer https://idp.example --jwt-audience vigil \
  --jwt-role-claim roles || exit 1
ANALYST_JWT=$(jwt HS256 "$(claims '["analyst"]')")
SCORER_JWT=$(jwt RS256 "$(claims '["scorer","viewer"]')")
check "an HS256 token of an analyst reads a transaction" test "$(call "$ANALYST_JWT" GET /v1/transactions/a1)" = 200
check "the analyst's token may not call an admin route (403)" test "$(call "$ANALYST_JWT" GET /v1/admin/keys)" = 403
check "an RS256 token of a scorer scores" test "$(call "$SCORER_JWT" POST /v1/score '{"transaction_id":"j1","customer_id":"c1","terminal_id":"t1","amount":10,"timestamp":"2018-05-01T11:00:00Z"}')" = 200
s=$(call "$(jwt HS256 "$(claims '["superuser"]')")" GET /metrics)
check "a token that grants no Vigil role: 403 ($s)" bash -c "[ '$s' = 403 ] && grep -q 'grant no Vigil role' '$WORK/resp'"
expect_401() {  # expect_401 DESCRIPTION TOKEN MESSAGE-FRAGMENT
  local s
  s=$(call "$2" GET /metrics)
  check "$1: 401 ($s)" test "$s" = 401
  check "$1: the error says why" grep -q "$3" "$WORK/resp"
}
GOOD=$(jwt HS256 "$(claims '["viewer"]')")
expect_401 "a tampered payload" "${GOOD%%.*}.$(printf '%s' "$(claims '["admin"]')" | b64url).${GOOD##*.}" "signature"
expect_401 "a truncated token" "${GOOD:0:$((${#GOOD} - 10))}" "token"
expect_401 "an expired token" "$(jwt HS256 "$(claims '["viewer"]' -3600)")" "expired"
expect_401 "a token not yet valid" "$(jwt HS256 "$(claims '["viewer"]' 600 ",\"nbf\":$((NOW + 3600))")")" "not yet valid"
expect_401 "a token signed by another key" "$(jwt RS256-OTHER "$(claims '["viewer"]')")" "signature"
expect_401 "alg none" "$(jwt none "$(claims '["admin"]')")" "none"
expect_401 "HS256 signed with the RS256 public key (algorithm confusion)" "$(jwt HS256-PUBKEY "$(claims '["admin"]')")" "signature"
expect_401 "another issuer" "$(jwt HS256 "$(claims '["viewer"]' 600 ',"iss":"https://evil.example"' | sed 's|"iss":"https://idp.example",||')")" "issuer"
expect_401 "another audience" "$(jwt HS256 "$(claims '["viewer"]' | sed 's|"aud":"vigil"|"aud":"other"|')")" "audience"
check "after the attacks the server is up" test "$(call "" GET /healthz)" = 200
stop_server
leaked=0
for t in "$ANALYST_JWT" "$SCORER_JWT" "$GOOD" "$(cat "$WORK/jwt.secret")"; do
  grep -qF -- "$t" "$WORK/serve.err" "$WORK/jwt.out" && leaked=$((leaked + 1))
done
check "no token or JWT secret in the logs" test "$leaked" = 0
expect_error "RS256 without an audience" "need --jwt-issuer and --jwt-audience" \
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --data-dir "$DATA" --jwt-algorithms RS256 \
  --jwt-public-keys "$WORK/rsa.pub" --jwt-issuer https://idp.example
expect_error "a JWT secret file without --jwt-algorithms" "need --jwt-algorithms" \
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --data-dir "$DATA" --jwt-secret-file "$WORK/jwt.secret"
printf 'short' >"$WORK/short.secret"
expect_error "an HS256 secret under 32 bytes" "fewer than 32" \
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --data-dir "$DATA" --jwt-algorithms HS256 --jwt-secret-file "$WORK/short.secret"

# --- limits: a rate per role, a concurrency per role, failed authentications per address -------
start_server "$WORK/limits.out" --auth-failure-limit 1/4 --rate-limit viewer=1/3 \
  --concurrency-limit processor=1 || exit 1
VIEWER="${KEY[viewer]}"
PROC="$("$VIGIL" keys create --role processor --name limited --data-dir "$DATA" 2>/dev/null)"
codes=""
for _ in 1 2 3 4; do codes+="$(call "$VIEWER" GET /metrics) "; done
check "a viewer limited to 1/s, burst 3: three pass, the fourth is 429 ($codes)" test "$codes" = "200 200 200 429 "
check "429 says the rate limit is spent" grep -q "rate limit of 1 requests per second" "$WORK/resp"
curl -q -s -D "$WORK/headers" -o /dev/null -H "Authorization: Bearer $VIEWER" "$(URL /metrics)"
check "429 carries Retry-After and the RateLimit-* headers" bash -c \
  "grep -qi '^Retry-After: [1-9]' '$WORK/headers' && grep -qi '^RateLimit-Limit: 1' '$WORK/headers' && grep -qi '^RateLimit-Remaining: 0' '$WORK/headers' && grep -qi '^RateLimit-Reset: [0-9]' '$WORK/headers'"
codes=""
for _ in 1 2 3 4 5 6; do codes+="$(call "${KEY[analyst]}" GET /v1/transactions/a1) "; done
check "a role without a limit is not limited ($codes)" test "$codes" = "200 200 200 200 200 200 "
sleep 1.1
check "a second later the viewer has a request again" test "$(call "$VIEWER" GET /metrics)" = 200
call "$PROC" POST /api/queues/TQ2/pull '{"wait_seconds": 3}' >/dev/null &
poll=$!
# Until the long poll holds the slot (a request of its own then fails fast with 404, freeing it).
for _ in $(seq 40); do
  s=$(call "$PROC" POST /api/queues/OTHER/pull)
  [ "$s" = 429 ] && break
  sleep 0.05
done
check "a processor limited to 1 at once: a second request while one waits is 429 ($s)" test "$s" = 429
check "it says why" grep -q "in flight already" "$WORK/resp"
wait "$poll"
s=$(call "$PROC" POST /api/queues/OTHER/pull)
check "once the first is answered the slot is free again ($s)" test "$s" = 404
codes=""
for _ in 1 2 3 4; do codes+="$(call "$TYPO" GET /metrics) "; done
codes+="$(call "$TYPO" GET /metrics) "
check "failed authentications, 4 allowed: then 429 ($codes)" test "$codes" = "401 401 401 401 429 "
check "it says why, with Retry-After" bash -c "grep -q 'too many failed authentications' '$WORK/resp' && \
  curl -q -s -D - -o /dev/null -H 'Authorization: Bearer $TYPO' '$(URL /metrics)' | grep -qi '^Retry-After: [1-9]'"
s=$(call "$ADMIN" GET /v1/admin/keys)
check "valid credentials from that address still pass (a NAT is not locked out) ($s)" test "$s" = 200
check "the public routes still answer" test "$(call "" GET /healthz)" = 200
sleep 2.2
check "after the refill a bad key is refused with 401 again" test "$(call "$TYPO" GET /metrics)" = 401
stop_server
expect_error "a rate limit for an unknown role" "neither a role nor a key id" \
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --data-dir "$DATA" --rate-limit root=5
expect_error "a rate that is not a number" "REQUESTS_PER_SECOND" \
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --data-dir "$DATA" --rate-limit scorer=fast

# --- --metrics-public, and --auth off -----------------------------------------------------------
start_server "$WORK/third.out" "${LIMIT[@]}" --metrics-public || exit 1
check "--metrics-public: /metrics without credentials" test "$(call "" GET /metrics)" = 200
check "--metrics-public: the rest still needs them" test "$(call "" GET /api/queues)" = 401
check "no CORS by default: no Access-Control-Allow-Origin" bash -c \
  "! curl -q -s -D - -o /dev/null -H 'Origin: https://ui.example' -H 'Authorization: Bearer $ADMIN' '$(URL /v1/admin/keys)' | grep -qi '^Access-Control-Allow-Origin'"
stop_server

# --- CORS: an allow-list of origins ---------------------------------------------------------------
start_server "$WORK/cors.out" "${LIMIT[@]}" --cors-origins https://ui.example,http://localhost:3000 || exit 1
preflight() {  # preflight ORIGIN PATH METHOD: the status; the headers in $WORK/headers
  curl -q -s -D "$WORK/headers" -o "$WORK/resp" -w '%{http_code}' -X OPTIONS -H "Origin: $1" \
    -H "Access-Control-Request-Method: $3" -H 'Access-Control-Request-Headers: authorization, content-type' "$(URL "$2")"
}
s=$(preflight https://ui.example /v1/score POST)
check "a preflight from an allowed origin, without credentials: 204 ($s)" test "$s" = 204
check "the preflight names the origin, the path's methods and the headers" bash -c \
  "grep -qi '^Access-Control-Allow-Origin: https://ui.example' '$WORK/headers' && grep -qi '^Access-Control-Allow-Methods: .*POST' '$WORK/headers' && grep -qi '^Access-Control-Allow-Headers: .*Authorization' '$WORK/headers'"
s=$(preflight https://evil.example /v1/score POST)
check "a preflight from another origin: 403, no Access-Control-Allow-Origin ($s)" \
  bash -c "[ '$s' = 403 ] && ! grep -qi '^Access-Control-Allow-Origin' '$WORK/headers'"
check "a preflight of an unknown path: 404" test "$(preflight https://ui.example /nowhere GET)" = 404
curl -q -s -D "$WORK/headers" -o /dev/null -H 'Origin: https://ui.example' -H "Authorization: Bearer $ADMIN" "$(URL /v1/admin/keys)"
check "a call from an allowed origin carries Access-Control-Allow-Origin and exposes the limits' headers" bash -c \
  "grep -qi '^Access-Control-Allow-Origin: https://ui.example' '$WORK/headers' && grep -qi '^Access-Control-Expose-Headers: .*RateLimit-Remaining' '$WORK/headers' && grep -qi '^Vary: Origin' '$WORK/headers'"
curl -q -s -D "$WORK/headers" -o /dev/null -H 'Origin: https://evil.example' -H "Authorization: Bearer $ADMIN" "$(URL /v1/admin/keys)"
check "a call from another origin carries none" bash -c "! grep -qi '^Access-Control-Allow-Origin' '$WORK/headers'"
check "a preflight does not pass authentication: the call itself still needs credentials" \
  test "$(curl -q -s -o /dev/null -w '%{http_code}' -H 'Origin: https://ui.example' "$(URL /v1/admin/keys)")" = 401
stop_server
expect_error "--cors-origins with a wildcard" "is not an origin" \
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --data-dir "$DATA" --cors-origins '*'
expect_error "--cors-origins with a path" "is not an origin" \
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --data-dir "$DATA" --cors-origins https://ui.example/app
expect_error "--auth off on a public address" "--auth off listens on 127.0.0.1 only" \
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --address 0.0.0.0 --data-dir "$DATA" --auth off
start_server "$WORK/off.out" --auth off || exit 1
check "--auth off: every route without credentials" test "$(call "" GET /api/queues)" = 200
check "--auth off: the warning" grep -q "authentication is OFF" "$WORK/serve.err"
stop_server

finish
