#!/usr/bin/env bash
# `make demo`: every function, locally, with its sample events, against moto
# and a CloudFormation stand-in, all on 127.0.0.1. Prints what happened and
# stops everything it started, on success, failure or Ctrl-C.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
work="$root/.demo"
rm -rf "$work" && mkdir -p "$work"
# MariaDB's data directory is 100 MB and worth nothing after the run (the
# logs stay).
trap 'cleanup; rm -rf "$work"/mariadb-*' EXIT
# Each function's local environment comes from its Cargo.toml; what it needs
# (services_*, seed_*) from local.sh, shared with `make invoke`.
# shellcheck source=scripts/local.sh
source scripts/local.sh

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

bold "Building the functions and the local stand-ins"
packages=()
for fn in "${functions[@]}"; do packages+=(-p "$fn"); done
cargo build --quiet --bins "${packages[@]}" -p suite-tests

load_function_envs
services_common
for fn in "${functions[@]}"; do "services_${fn//-/_}"; done
run_env AWS_LAMBDA_LOG_FORMAT JSON
start_emulator
# The emulator compiles on the first invoke; warm it up outside the timings.
echo '{}' >"$work/warmup.json"
invoke cfn-responder "$work/warmup.json" /dev/null || true
echo "moto on :$moto_port, MariaDB on :$mariadb_port, CloudFormation stand-in on :$sink_port, Lambda emulator on :$lambda_port"

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
seed_cfn_responder
for event in events/cfn-responder/*.json; do
  name=$(basename "$event")
  cfn_local_event "$event" "$work/$name"
  view cfn-request "$event"
  invoke cfn-responder "$work/$name" "$work/$name.out" \
    || { echo "    invocation failed:"; sed 's/^/    /' "$work/$name.out"; }
  show_new_responses
done

bold "kinesis-to-dynamodb: events/kinesis-to-dynamodb/ into moto DynamoDB (MODE=latest)"
seed_kinesis_to_dynamodb
# The last scene's batch: it shows an alarm and its fix.
scene_event=events/kinesis-to-dynamodb/05-id-changed-shape.json
for event in events/kinesis-to-dynamodb/*.json; do
  [ "$event" = "$scene_event" ] && continue
  echo
  echo "> $(basename "$event"): $(view get "$event" Records --len) record(s)"
  invoke kinesis-to-dynamodb "$event" "$work/kinesis.out" \
    || { echo "    invocation failed:"; sed 's/^/    /' "$work/kinesis.out"; continue; }
  echo "    response: $(cat "$work/kinesis.out")"
done
echo
echo "> the tables afterwards"
tables show "$(fn_env kinesis-to-dynamodb TABLE_NAME)"
tables show "$(fn_env kinesis-to-dynamodb REJECTS_TABLE_NAME)"

bold "ses-bounce-handler: events/ses-bounce-handler/ into a suppression table in moto"
seed_ses_bounce_handler
suppression=$(fn_env ses-bounce-handler SUPPRESSION_TABLE)
for event in events/ses-bounce-handler/*.json; do
  echo
  echo "> $(basename "$event")"
  invoke ses-bounce-handler "$event" "$work/ses.out" \
    || { echo "    invocation failed:"; sed 's/^/    /' "$work/ses.out"; continue; }
  echo "    response: $(cat "$work/ses.out")"
done
echo
echo "> the suppression table afterwards"
tables show "$suppression"
echo
echo "> may we send to them? ses-suppression check (exit status 1 = suppressed)"
for address in Jane.Doe@Example.com full.box@example.net happy.reader@example.org; do
  AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_REGION=us-east-1 target/debug/ses-suppression check "$address" --table "$suppression" | sed 's/^/    /' || true
done
echo
echo "> the same check with the aws CLI"
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  .venv/bin/aws dynamodb get-item --endpoint-url "http://127.0.0.1:$moto_port" --region us-east-1 \
  --table-name "$suppression" --consistent-read --key '{"address": {"S": "jane.doe@example.com"}}' \
  --query 'Item.[status.S, reason.S, subType.S]' --output text | sed 's/^/    /'

bold "snapshot-copier: tagged snapshots in moto us-east-1, copied to us-west-2 and eu-west-1"
seed_snapshot_copier
echo "> before"
for region in us-east-1 us-west-2 eu-west-1; do show_snapshots "$region"; done
local_event_snapshot_copier events/snapshot-copier/01-create-snapshot-succeeded.json "$work/created.json"
for event in "$work/created.json" events/snapshot-copier/02-create-snapshot-failed.json events/snapshot-copier/04-scheduled-sweep.json; do
  echo
  echo "> $(basename "$event" | sed 's/^created.json$/01-create-snapshot-succeeded.json (with the real id)/')"
  invoke snapshot-copier "$event" "$work/snapshot.out" \
    || { echo "    invocation failed:"; sed 's/^/    /' "$work/snapshot.out"; continue; }
  view snapshot-summary "$work/snapshot.out"
done
echo
echo "> after (KEEP_COPIES=$(fn_env snapshot-copier KEEP_COPIES): two of the four old copies of vol-0feedfacefeedface pruned; moto gives them one start time)"
for region in us-east-1 us-west-2 eu-west-1; do show_snapshots "$region"; done

bold "transcode-launcher: the sample uploads against moto EC2, then one worker run for real"
seed_transcode_launcher
for event in events/transcode-launcher/*.json; do
  echo
  name=$(basename "$event")
  out="$work/transcode-${name%%-*}.out"
  echo "> $name"
  invoke transcode-launcher "$event" "$out" \
    || { echo "    invocation failed:"; sed 's/^/    /' "$out"; continue; }
  view transcode-results "$out"
done
echo
echo "> the workers in moto (one per object; the duplicate launched nothing)"
aws_local ec2 describe-instances --output json | view instances -
# The worker as cloud-init runs it: env -i, a bare PATH, Debian's ffmpeg,
# the aws CLI pointed at moto S3 (services_transcode_launcher), and a
# recorder instead of shutdown.
s3() { "$work/worker-bin/aws" --region us-east-1 "$@"; }
input_bucket=$(fn_env transcode-launcher INPUT_BUCKET)
output_bucket=$(fn_env transcode-launcher OUTPUT_BUCKET)
output_prefix=$(fn_env transcode-launcher OUTPUT_PREFIX)
key="$(fn_env transcode-launcher INPUT_PREFIX)/My Holiday+2024 (final).MOV"
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc=duration=2:size=1280x720:rate=25 \
  -f lavfi -i sine=duration=2 -c:v libx264 -preset ultrafast -c:a aac -shortest "$work/clip.mp4"
s3 s3api put-object --bucket "$input_bucket" --key="$key" --body "$work/clip.mp4" >/dev/null
instance=$(view get "$work/transcode-01.out" results.0.instanceId 2>/dev/null || true)
echo
echo "> running the user data of the worker launched for $key"
aws_local ec2 describe-instance-attribute --instance-id "$instance" --attribute userData \
  --query UserData.Value --output text | base64 -d >"$work/user-data.sh"
chmod +x "$work/user-data.sh"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TRANSCODE_SHUTDOWN_COMMAND="$work/worker-bin/shutdown" \
  "$work/user-data.sh" 2>"$work/worker.log" && echo "    worker exit status 0" || echo "    worker exit status $?"
echo "> what landed in s3://$output_bucket/$output_prefix/"
s3 s3api list-objects-v2 --bucket "$output_bucket" --prefix "$output_prefix/" \
  --query 'Contents[].[Key,Size]' --output text | sed 's/^/    /'
job=$(s3 s3api list-objects-v2 --bucket "$output_bucket" --prefix "$output_prefix/" --query 'Contents[0].Key' --output text | cut -d/ -f2)
s3 s3api get-object --bucket "$output_bucket" --key "$output_prefix/$job/status.json" "$work/status.json" >/dev/null
view status-json "$work/status.json"

bold "rds-log-rotator: MariaDB logging to tables, RDS's rotate procedures, archives in moto S3"
seed_rds_log_rotator
archive_bucket=$(fn_env rds-log-rotator ARCHIVE_BUCKET)
mdb() { mariadb --no-defaults --socket="$mariadb_socket" -uroot --batch --skip-column-names "$@"; }
mdb -e "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, customer VARCHAR(20), total DECIMAL(8,2));
        INSERT INTO shop.orders VALUES (1, 'ann', 10), (2, 'bob', 20), (3, 'cy', 30);"
{
  for i in $(seq 1 40); do echo "SELECT * FROM shop.orders WHERE id IN ($i, $((i + 1)), 3);"; done
  echo "SELECT SLEEP(0.4); SELECT SLEEP(0.2); SELECT customer, SUM(total) FROM shop.orders GROUP BY customer;"
} | mdb >/dev/null
live() { echo "    live rows: slow_log $(mdb -e 'SELECT COUNT(*) FROM mysql.slow_log'), general_log $(mdb -e 'SELECT COUNT(*) FROM mysql.general_log')"; }
live
rotate_demo() {
  echo
  echo "> $1"
  invoke rds-log-rotator "$2" "$work/rotator.out" \
    || { echo "    invocation failed:"; sed 's/^/    /' "$work/rotator.out"; return 0; }
  view rotator-report "$work/rotator.out" "$archive_bucket"
}
rotate_demo "02-manual-dry-run.json (changes nothing)" events/rds-log-rotator/02-manual-dry-run.json
rotate_demo "01-scheduled.json: archive the backup (none yet), rotate, archive the new backup" events/rds-log-rotator/01-scheduled.json
live
echo
echo "> RDS rotates on its own between runs (CALL mysql.rds_rotate_slow_log by hand)"
mdb -e "SELECT 'after the outside rotation'; CALL mysql.rds_rotate_slow_log(); SELECT 'later';" >/dev/null
rotate_demo "01-scheduled.json again: the outside backup is archived before rotating" events/rds-log-rotator/01-scheduled.json
echo
echo "> s3://$archive_bucket/"
aws_local s3api list-objects-v2 --bucket "$archive_bucket" --query 'Contents[].[Key,Size]' --output text | sed 's/^/    /'

bold "When it breaks: a rejected record, its alarm, and the runbook's fix with kinesis-replay"
orders=$(fn_env kinesis-to-dynamodb TABLE_NAME)
partition_key=$(fn_env kinesis-to-dynamodb PARTITION_KEY)
echo "A producer release sends order-4002 with its id as an object. PartitionKeySource is empty"
echo "(the key is the string or number at /id, else the Kinesis partition key), so the record is rejected."
echo
echo "> $(basename "$scene_event"): order-4001 as before, order-4002 in the new shape"
invoke kinesis-to-dynamodb "$scene_event" "$work/kinesis-scene.out" \
  || { echo "    invocation failed:"; sed 's/^/    /' "$work/kinesis-scene.out"; exit 1; }
echo "    response: $(cat "$work/kinesis-scene.out")"
# Stopping the emulator flushes the function's logs; nothing is invoked after this.
kill "$emulator_pid" 2>/dev/null || true
wait "$emulator_pid" 2>/dev/null || true
emf=$(grep '"Function":"kinesis-to-dynamodb"' "$work/lambda.log" | grep '"RecordsIn":' | tail -n 1 || true)
[ -n "$emf" ] || { echo "no EMF line of kinesis-to-dynamodb in $work/lambda.log" >&2; exit 1; }
echo "    metrics (EMF): $(sed 's/,"_aws":.*$/}/' <<<"$emf")"
tables get "$orders" "$partition_key" order-4001
tables get "$orders" "$partition_key" order-4002
alarm=$(awk '/^  [A-Za-z0-9]+:$/ {id = $1} /^      MetricName: Rejected$/ {sub(":", "", id); print id}' template.yaml)
[ -n "$alarm" ] || { echo "template.yaml has no alarm on the metric Rejected" >&2; exit 1; }
echo
echo "> Deployed, this EMF line puts Rejected = $(view get - Rejected <<<"$emf") into CloudWatch, and"
echo "  alarm $alarm (template.yaml) fires. What to do: docs/runbook.md, section"
echo "  \"$alarm\". Its steps, here against moto:"

# kinesis-replay reads the function's configuration from the environment:
# the function's own (Cargo.toml here; the runbook exports the deployed one).
replay_env=(AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port")
for key in "${!function_env[@]}"; do
  if [ "${key%%/*}" = kinesis-to-dynamodb ]; then replay_env+=("${key#*/}=${function_env[$key]}"); fi
done
# Exit status 1 means some rejects stay (the demo goes on); 2 or 3 stop it.
kinesis_replay() {
  local status=0
  echo
  echo "$ kinesis-replay $*"
  env "${replay_env[@]}" target/debug/kinesis-replay "$@" >"$work/kinesis-replay.out" 2>&1 || status=$?
  sed 's/^/    /' "$work/kinesis-replay.out"
  case $status in
    0) ;;
    1) echo "    (exit status 1: some rejects stay, listed above)" ;;
    *) echo "    (exit status $status)"; return 1 ;;
  esac
}
kinesis_replay rejects list
echo "    (the last one is order-4002; the two others are the broken records of 02-batch-with-poison.json above)"
echo
echo "> Fix the cause: every producer version sets the Kinesis partition key to the order id, so key by it."
echo "  Deployed: the stack parameter PartitionKeySource=partitionKey, then deploy. Here: the function's"
echo "  configuration plus PARTITION_KEY_SOURCE=partitionKey, exported for kinesis-replay"
replay_env+=(PARTITION_KEY_SOURCE=partitionKey)
kinesis_replay rejects replay --dry-run
kinesis_replay rejects replay
echo
echo "> afterwards"
tables get "$orders" "$partition_key" order-4002
kinesis_replay rejects list
echo "    (order-4002 is in the table and its reject is gone. The two broken records stay: no configuration"
echo "    fixes them; the runbook says fix the producer, then kinesis-replay rejects delete --id <id>)"

bold "Demo finished. Logs are in .demo/"
