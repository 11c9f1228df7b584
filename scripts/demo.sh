#!/usr/bin/env bash
# `make demo`: every function, locally, with its sample events, against moto
# and a CloudFormation stand-in, all on 127.0.0.1. Prints what happened and
# stops everything it started, on success, failure or Ctrl-C.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
work="$root/.demo"
rm -rf "$work" && mkdir -p "$work"

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

bold "Building the functions and the local stand-ins"
cargo build --quiet --bins -p cfn-responder -p kinesis-to-dynamodb -p ses-bounce-handler -p snapshot-copier -p suite-tests

start_moto "$work/moto.log"
sink_port=$(free_port); lambda_port=$(free_port)
target/debug/cfn-response-sink "$sink_port" >"$work/cloudformation.log" 2>&1 & pids+=($!)
wait_port "$sink_port" "CloudFormation stand-in"

cat >"$work/lambda.env" <<ENV
AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
AWS_REGION=us-east-1
AWS_EC2_METADATA_DISABLED=true
AWS_LAMBDA_LOG_FORMAT=JSON
ALLOW_LOCAL_RESPONSE_URL=true
TABLE_NAME=orders
PARTITION_KEY=pk
REJECTS_TABLE_NAME=rejects
SUPPRESSION_TABLE=suppression
DEFAULT_DESTINATIONS=eu-west-1
KEEP_COPIES=2
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

bold "kinesis-to-dynamodb: events/kinesis-to-dynamodb/ into moto DynamoDB (MODE=latest)"
tables() { .venv/bin/python scripts/demo_dynamodb.py "http://127.0.0.1:$moto_port" "$@"; }
tables create orders pk
tables create rejects shardId position
for event in events/kinesis-to-dynamodb/*.json; do
  echo
  echo "> $(basename "$event"): $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["Records"]))' "$event") record(s)"
  cargo lambda invoke kinesis-to-dynamodb -A 127.0.0.1 -P "$lambda_port" --data-file "$event" >"$work/kinesis.out" 2>&1 \
    || { echo "    invocation failed:"; sed 's/^/    /' "$work/kinesis.out"; continue; }
  echo "    response: $(cat "$work/kinesis.out")"
done
echo
echo "> the tables afterwards"
tables show orders
tables show rejects

bold "ses-bounce-handler: events/ses-bounce-handler/ into a suppression table in moto"
tables create suppression address
for event in events/ses-bounce-handler/*.json; do
  echo
  echo "> $(basename "$event")"
  cargo lambda invoke ses-bounce-handler -A 127.0.0.1 -P "$lambda_port" --data-file "$event" >"$work/ses.out" 2>&1 \
    || { echo "    invocation failed:"; sed 's/^/    /' "$work/ses.out"; continue; }
  echo "    response: $(cat "$work/ses.out")"
done
echo
echo "> the suppression table afterwards"
tables show suppression
echo
echo "> may we send to them? ses-suppression check (exit status 1 = suppressed)"
for address in Jane.Doe@Example.com full.box@example.net happy.reader@example.org; do
  AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_REGION=us-east-1 target/debug/ses-suppression check "$address" --table suppression | sed 's/^/    /' || true
done
echo
echo "> the same check with the aws CLI"
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  .venv/bin/aws dynamodb get-item --endpoint-url "http://127.0.0.1:$moto_port" --region us-east-1 \
  --table-name suppression --consistent-read --key '{"address": {"S": "jane.doe@example.com"}}' \
  --query 'Item.[status.S, reason.S, subType.S]' --output text | sed 's/^/    /'

bold "snapshot-copier: tagged snapshots in moto us-east-1, copied to us-west-2 and eu-west-1"
ec2_demo() { .venv/bin/python scripts/demo_ec2.py "http://127.0.0.1:$moto_port" "$@"; }
announced=$(ec2_demo setup)
echo "> before"
for region in us-east-1 us-west-2 eu-west-1; do ec2_demo show "$region"; done
python3 - events/snapshot-copier/01-create-snapshot-succeeded.json "$announced" "$work/created.json" <<'PY'
import json, sys
event = json.load(open(sys.argv[1]))
event["detail"]["snapshot_id"] = f"arn:aws:ec2::us-east-1:snapshot/{sys.argv[2]}"
json.dump(event, open(sys.argv[3], "w"))
PY
for event in "$work/created.json" events/snapshot-copier/02-create-snapshot-failed.json events/snapshot-copier/04-scheduled-sweep.json; do
  echo
  echo "> $(basename "$event" | sed 's/^created.json$/01-create-snapshot-succeeded.json (with the real id)/')"
  cargo lambda invoke snapshot-copier -A 127.0.0.1 -P "$lambda_port" --data-file "$event" >"$work/snapshot.out" 2>&1 \
    || { echo "    invocation failed:"; sed 's/^/    /' "$work/snapshot.out"; continue; }
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); [print(f"    {k}: {json.dumps(v)}") for k, v in s.items() if v]' "$work/snapshot.out"
done
echo
echo "> after (KEEP_COPIES=2: two of the four old copies of vol-0feedfacefeedface pruned; moto gives them one start time)"
for region in us-east-1 us-west-2 eu-west-1; do ec2_demo show "$region"; done

bold "Demo finished. Logs are in .demo/"
