#!/usr/bin/env bash
# Fails when an #include crosses the arrows of cmake/components.txt (the same file CMakeLists.txt
# builds the component libraries from):
#   - a file in src/X includes a header of component Y (src/Y/... or a public header Y owns)
#     that X does not reach through its arrows (unit tests, and the *_for_test.h helpers they
#     share, may also reach the `test_only` ones);
#   - a file in src/X includes a third-party header listed there for other components only;
#   - a public header (include/vigil/*.h) includes anything but the C++ standard library and the
#     public headers its owner reaches, or has no owner.
# src/cli, tests/ and bench/ may include everything. Reads the sources only; no build needed.
# Usage: scripts/check-layering.sh [ROOT]   (ROOT defaults to the repository of this script)
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
spec=cmake/components.txt

declare -A deps=() owner=() users=() test_only=()
prefixes=()
while read -r kind a rest; do
  case "$kind" in
    component) deps[$a]="$rest" ;;
    public) owner[$a]="$rest" ;;
    third_party) users[$a]="$rest"; prefixes+=("$a") ;;
    test_only) test_only[$a]=1 ;;
    "" | "#"*) ;;
    *) echo "$spec: unknown line '$kind $a $rest'" >&2; exit 2 ;;
  esac
done < <(sed 's/#.*//' "$spec")

# reach[X]: the components X depends on, directly or through others (X itself not included).
declare -A reach=()
closure() {
  local out="" todo="${deps[$1]}" c
  while [ -n "${todo// /}" ]; do
    read -r c todo <<<"$todo"
    if [ -z "${deps[$c]+x}" ]; then
      echo "$spec: component '$1' depends on '$c', which is no component" >&2
      exit 2
    fi
    case " $out " in *" $c "*) continue ;; esac
    out="$out $c"
    todo="$todo ${deps[$c]}"
  done
  echo "$out"
}
for c in "${!deps[@]}"; do reach[$c]="$(closure "$c")"; done
for c in "${!test_only[@]}"; do
  [ -n "${deps[$c]+x}" ] || { echo "$spec: test_only '$c' is no component" >&2; exit 2; }
done

failures=0
fail() {
  echo "$*" >&2
  failures=$((failures + 1))
}
# may FROM TO [TEST]: FROM's code may include TO's headers.
may() {
  [ "$1" = "$2" ] && return 0
  case " ${reach[$1]} " in *" $2 "*) return 0 ;; esac
  if [ -n "${3:-}" ]; then
    local t
    for t in "${!test_only[@]}"; do
      [ "$t" = "$2" ] && return 0
      case " ${reach[$t]} " in *" $2 "*) return 0 ;; esac
    done
  fi
  return 1
}
third_party_users() {  # prints the users of the first third_party prefix matching $1, if any
  local p
  for p in "${prefixes[@]}"; do
    case "$1" in "$p"*) echo "${users[$p]}"; return 0 ;; esac
  done
  return 1
}
# includes FILE: "LINE PATH" for each #include "PATH" or <PATH>.
includes() {
  grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<][^">]+[">]' "$1" |
    sed -E 's/^([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*["<]([^">]+)[">].*/\1 \2/'
}

for dir in src/*/; do
  comp="$(basename "$dir")"
  [ "$comp" = cli ] && continue
  if [ -z "${deps[$comp]+x}" ]; then
    fail "$dir: not a component of $spec (add a 'component $comp ...' line; CMake builds only those)"
    continue
  fi
  for file in "$dir"*.h "$dir"*.cc; do
    [ -e "$file" ] || continue
    is_test=""
    case "$file" in *_test.cc | *_testutil.* | *_for_test.h | *_fuzz.cc) is_test=1 ;; esac
    while read -r line path; do
      to=""
      if [ -n "${owner[$path]+x}" ]; then
        to="${owner[$path]}"
      elif [[ "$path" == vigil/* ]]; then
        fail "$file:$line: includes \"$path\", a public header with no owner in $spec"
        continue
      elif [[ "$path" == */* && -d "src/${path%%/*}" ]]; then
        to="${path%%/*}"
        if [ "$to" = cli ]; then
          fail "$file:$line: includes \"$path\": nothing depends on src/cli"
          continue
        fi
      elif who="$(third_party_users "$path")"; then
        ok=""
        case " $who " in *" $comp "* | *" * "*) ok=1 ;; esac
        # A unit test may reach behind a component it depends on, to make that backend fail
        # for real (the engine's tests lock the SQLite file under the store).
        if [ -z "$ok" ] && [ -n "$is_test" ]; then
          for w in $who; do
            if may "$comp" "$w" "$is_test"; then ok=1; fi
          done
        fi
        [ -n "$ok" ] || fail "$file:$line: includes <$path>, which only $who may use ($spec)"
        continue
      else
        continue  # the standard library, the system, or a library no rule names
      fi
      if [ -z "${deps[$to]+x}" ]; then
        fail "$file:$line: includes \"$path\" of src/$to, which is not a component of $spec"
      elif ! may "$comp" "$to" "$is_test"; then
        fail "$file:$line: includes \"$path\" ($to), but $comp may not depend on $to" \
"($spec: $comp -> ${deps[$comp]:-nothing}${is_test:+; tests also: ${!test_only[*]}})"
      fi
    done < <(includes "$file")
  done
done

for file in include/vigil/*.h; do
  header="${file#include/}"
  if [ -z "${owner[$header]+x}" ]; then
    fail "$file: a public header with no owner: add 'public $header COMPONENT' to $spec"
    continue
  fi
  from="${owner[$header]}"
  while read -r line path; do
    if [[ "$path" != */* && "$path" != *.* ]]; then
      continue  # <string>, <vector>, ...: the C++ standard library
    elif [ -n "${owner[$path]+x}" ]; then
      to="${owner[$path]}"
      may "$from" "$to" ||
        fail "$file:$line: includes \"$path\" ($to), but $from may not depend on $to ($spec)"
    else
      fail "$file:$line: includes <$path>: a public header includes only the C++ standard" \
"library and other public headers (third-party types stay in the .cc or behind a Pimpl)"
    fi
  done < <(includes "$file")
done

if [ "$failures" -gt 0 ]; then
  echo "check-layering: $failures include(s) cross the arrows of $spec" >&2
  exit 1
fi
echo "check-layering: every include follows $spec"
