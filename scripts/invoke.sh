#!/usr/bin/env bash
# `make invoke FN=<function> EVENT=<file>`: runs one function once with one
# event under the cargo lambda emulator. Its local environment comes from
# functions/<function>/Cargo.toml, and what it needs (moto, MariaDB for
# rds-log-rotator) is started and seeded as `make demo` does, on 127.0.0.1.
# It prints the response and the function's logs, then stops everything it
# started.
set -euo pipefail
fn=${1-} event=${2-}
usage="make invoke FN=<function> EVENT=events/<function>/<file>.json"
here=$(cd "$(dirname "$0")/.." && pwd)
functions=$(cd "$here/functions" && printf '%s ' */ | tr -d /)
fail() { echo "make invoke: $*" >&2; exit 2; }
[ -n "$fn" ] || fail "FN is not set ($usage); functions: $functions"
[ -f "$here/functions/$fn/Cargo.toml" ] || fail "FN=$fn is not a function; functions: $functions"
[ -n "$event" ] || fail "EVENT is not set ($usage); samples: events/$fn/"
[ -f "$event" ] || fail "EVENT=$event: no such file"
event=$(cd "$(dirname "$event")" && pwd)/$(basename "$event")

# shellcheck source=scripts/lib.sh
source "$here/scripts/lib.sh"
mkdir -p target/invoke
work=$(mktemp -d target/invoke/"$fn".XXXXXX)
work=$root/$work
# MariaDB's data directory is 100 MB and worth nothing after the run.
trap 'cleanup; rm -rf "$work"/mariadb-*' EXIT
# shellcheck source=scripts/local.sh
source scripts/local.sh
step=${fn//-/_}

echo "building $fn and the local stand-ins"
cargo build --quiet -p "$fn" --bin "$fn" -p suite-tests --bins
load_function_envs
services_common
"services_$step"
start_emulator
"seed_$step"

echo "invoking $fn with $(basename "$event")"
if [ "$fn" = cfn-responder ]; then
  cfn_local_event "$event" "$work/event.json"
  event=$work/event.json
elif [ "$fn" = snapshot-copier ] && grep -q 'arn:aws:ec2::us-east-1:snapshot/' "$event"; then
  local_event_snapshot_copier "$event" "$work/event.json"
  event=$work/event.json
fi
status=0
invoke "$fn" "$event" "$work/response.json" --output-format json || status=$?
# Stopping the emulator flushes the function's logs.
kill "$emulator_pid" 2>/dev/null || true
wait "$emulator_pid" 2>/dev/null || true

echo
echo "logs:"
# The emulator's own lines out; the per-invocation span prefix (request and
# trace ids) and the EMF envelope shortened: one invocation, one reader.
grep -v -E '^ *INFO |command killed' "$work/lambda.log" \
  | sed -E -e 's/Lambda runtime invoke\{[^}]*\}(:invocation\{[^}]*\})?: //' \
      -e '/^\{.*"_aws":/{s/,"_aws":.*$/}/;s/^/metrics /;}' -e 's/^/  /' || true
if [ "$fn" = cfn-responder ]; then
  echo
  echo "CloudFormation stand-in:"
  grep -v '^cfn-response-sink listening' "$work/cloudformation.log" | sed 's/^/  /' || true
fi
echo
if [ "$status" -eq 0 ]; then
  echo "response:"
else
  echo "invocation failed:"
fi
cat "$work/response.json"
echo
echo "(files of this run: ${work#"$root"/})"
exit "$status"
