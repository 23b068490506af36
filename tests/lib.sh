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
finish() {
  echo "$passes passed, $failures failed"
  [ "$failures" -eq 0 ]
}
