# Shared by the end-to-end suites: counters, checks and the closing "N passed, M failed" line.
failures=0
passes=0
pass() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
# check "description" command...: the command must succeed.
check() {
  local what="$1"; shift
  if "$@"; then pass; else fail "$what"; fi
}
# expect_error "description" "message fragment" command...: non-zero exit, fragment on stderr.
expect_error() {
  local what="$1" fragment="$2"; shift 2
  local err
  if err="$("$@" 2>&1 >/dev/null)"; then
    fail "$what: exit 0"
  elif ! grep -qF -- "$fragment" <<<"$err"; then
    fail "$what: stderr lacks '$fragment': $err"
  else
    pass
  fi
}
# use_admin_key DATA_DIR: from here on every curl of the suite sends the admin API key that
# `vigil serve` wrote to DATA_DIR on its first start (through $WORK/curlhome/.curlrc: `curl -q`
# sends none), and `vigil process` sends it to the queue service. Sets ADMIN_KEY.
use_admin_key() {
  local i
  for i in $(seq 100); do
    [ -s "$1/admin.key" ] && break
    sleep 0.1
  done
  ADMIN_KEY="$(cat "$1/admin.key" 2>/dev/null)"
  [ -n "$ADMIN_KEY" ] || fail "no admin key in $1"
  mkdir -p "$WORK/curlhome"
  printf 'header = "Authorization: Bearer %s"\n' "$ADMIN_KEY" >"$WORK/curlhome/.curlrc"
  export CURL_HOME="$WORK/curlhome" VIGIL_QUEUE_TOKEN="$ADMIN_KEY"
}
finish() {
  echo "$passes passed, $failures failed"
  [ "$failures" -eq 0 ]
}
