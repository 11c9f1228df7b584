#!/usr/bin/env bash
# `make demo`: every function, locally, with its sample events, against moto
# and a CloudFormation stand-in, all on 127.0.0.1. Prints what happened and
# stops everything it started, on success, failure or Ctrl-C.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
work="$root/.demo"
rm -rf "$work" && mkdir -p "$work"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on 127.0.0.1:$1 ($2)" >&2; return 1
}
bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

bold "Building the functions and the local stand-ins"
cargo build --quiet --bins -p cfn-responder -p suite-tests

moto_port=$(free_port); sink_port=$(free_port); lambda_port=$(free_port)
moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 & pids+=($!)
target/debug/cfn-response-sink "$sink_port" >"$work/cloudformation.log" 2>&1 & pids+=($!)
wait_port "$moto_port" moto
wait_port "$sink_port" "CloudFormation stand-in"

cat >"$work/lambda.env" <<ENV
AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
AWS_REGION=us-east-1
AWS_EC2_METADATA_DISABLED=true
AWS_LAMBDA_LOG_FORMAT=JSON
ALLOW_LOCAL_RESPONSE_URL=true
ENV
cargo lambda watch --quiet -A 127.0.0.1 -P "$lambda_port" --timeout 120 \
  --env-file "$work/lambda.env" >"$work/lambda.log" 2>&1 & pids+=($!)
wait_port "$lambda_port" "cargo lambda watch"
# The emulator compiles on the first invoke; warm it up outside the timings.
echo '{}' >"$work/warmup.json"
cargo lambda invoke cfn-responder -A 127.0.0.1 -P "$lambda_port" --data-file "$work/warmup.json" >/dev/null 2>&1 || true
echo "moto on :$moto_port, CloudFormation stand-in on :$sink_port, Lambda emulator on :$lambda_port"

# Shows what the stand-in received since the last call.
seen=0
show_new_responses() {
  local total
  for _ in $(seq 1 50); do
    total=$(wc -l <"$work/cloudformation.log")
    [ "$total" -gt "$seen" ] && break
    sleep 0.1
  done
  tail -n +"$((seen + 1))" "$work/cloudformation.log" | { grep -v '^cfn-response-sink listening' || true; } | sed 's/^/    /'
  seen=$(wc -l <"$work/cloudformation.log")
}

bold "cfn-responder: playing CloudFormation with events/cfn-responder/"
for event in events/cfn-responder/*.json; do
  name=$(basename "$event")
  python3 - "$event" "$sink_port" "$work/$name" <<'PY'
import json, sys
event = json.load(open(sys.argv[1]))
# The sample carries a real S3 pre-signed URL; answer to the local stand-in.
event["ResponseURL"] = f"http://127.0.0.1:{sys.argv[2]}/cloudformation/{event['RequestId']}"
json.dump(event, open(sys.argv[3], "w"))
print(f"\n> {event['RequestType']} {event['ResourceType']} {event['LogicalResourceId']}", end="")
if "PhysicalResourceId" in event:
    print(f" (PhysicalResourceId {event['PhysicalResourceId']})", end="")
print()
PY
  cargo lambda invoke cfn-responder -A 127.0.0.1 -P "$lambda_port" --data-file "$work/$name" >"$work/$name.out" 2>&1 \
    || { echo "    invocation failed:"; sed 's/^/    /' "$work/$name.out"; }
  show_new_responses
done

bold "Demo finished. Logs are in .demo/"
