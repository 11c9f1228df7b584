# shellcheck shell=bash
# Sourced by demo.sh and invoke.sh, after lib.sh (and $work set): what each
# function needs on 127.0.0.1, and its seed data, all named from the
# function's local environment, [package.metadata.lambda.env] in
# functions/<name>/Cargo.toml (lib.sh's fn_env, after load_function_envs).
#
# Per function NAME (dashes as underscores), two steps:
#   services_NAME  starts what NAME needs and adds the run's values to the
#                  emulator's environment (run_env), before start_emulator;
#   seed_NAME      creates what NAME expects to find (tables, buckets, ...).

# run_env VAR VALUE: a value that depends on this run (a port, a generated
# ARN), for every function. It must not also be in a function's metadata,
# where cargo lambda watch would let the metadata win.
run_env() {
  local key
  for key in "${!function_env[@]}"; do
    if [ "${key#*/}" = "$1" ]; then
      echo "$1 depends on the run, but functions/${key%%/*}/Cargo.toml sets it: remove it there" >&2
      return 1
    fi
  done
  # Quoted: cargo-lambda's env-file parser refuses a bare '=' in a value.
  echo "$1=\"$2\"" >>"$work/lambda.env"
}

# start_emulator: cargo lambda watch on a free port, every function with its
# metadata plus the run's values; sets lambda_port. The first invoke of a
# function starts it (the binaries are built beforehand). No hot reload: an
# edit elsewhere in the tree would kill the function mid-invocation.
start_emulator() {
  lambda_port=$(free_port)
  touch "$work/lambda.env"
  cargo lambda watch --quiet --ignore-changes -A 127.0.0.1 -P "$lambda_port" --timeout 120 \
    --env-file "$work/lambda.env" >"$work/lambda.log" 2>&1 &
  emulator_pid=$!
  pids+=("$emulator_pid")
  wait_port "$lambda_port" "cargo lambda watch" || { cat "$work/lambda.log" >&2; return 1; }
}

# invoke FUNCTION EVENT_FILE OUT_FILE [ARGS]: one synchronous invoke through
# the emulator; the answer (or the failure) goes to OUT_FILE.
invoke() {
  local function=$1 event=$2 out=$3
  shift 3
  cargo lambda invoke "$function" -A 127.0.0.1 -P "$lambda_port" --data-file "$event" "$@" >"$out" 2>&1
}

# Every function talks to moto.
services_common() {
  start_moto "$work/moto.log"
  run_env AWS_ENDPOINT_URL "http://127.0.0.1:$moto_port"
}

# cfn-responder answers CloudFormation at the event's ResponseURL: a local
# stand-in (target/debug/cfn-response-sink) receives the answers; sets sink_port.
services_cfn_responder() {
  sink_port=$(free_port)
  target/debug/cfn-response-sink "$sink_port" >"$work/cloudformation.log" 2>&1 &
  pids+=($!)
  wait_port "$sink_port" "CloudFormation stand-in"
}
seed_cfn_responder() { :; }

# cfn_local_event EVENT OUT: EVENT with its ResponseURL (the samples carry
# real S3 pre-signed URLs) pointed at the local stand-in.
cfn_local_event() {
  sed -E "s|(\"ResponseURL\"[[:space:]]*:[[:space:]]*\")[^\"]*\"|\1http://127.0.0.1:$sink_port/cloudformation/$(basename "$1" .json)\"|" "$1" >"$2"
  grep -q "\"ResponseURL\": *\"http://127.0.0.1:$sink_port/" "$2" \
    || { echo "$1: no ResponseURL to point at the local stand-in" >&2; return 1; }
}

services_kinesis_to_dynamodb() { :; }
seed_kinesis_to_dynamodb() {
  tables create "$(fn_env kinesis-to-dynamodb TABLE_NAME)" "$(fn_env kinesis-to-dynamodb PARTITION_KEY)"
  tables create "$(fn_env kinesis-to-dynamodb REJECTS_TABLE_NAME)" shardId position
}

services_ses_bounce_handler() { :; }
seed_ses_bounce_handler() {
  tables create "$(fn_env ses-bounce-handler SUPPRESSION_TABLE)" address
}

services_snapshot_copier() { :; }
# Tagged snapshots in us-east-1 and earlier copies in us-west-2; sets
# announced (the id of the snapshot the sample "created" event is about).
seed_snapshot_copier() {
  local day
  announced=$(snapshot us-east-1 dr:copy-to=us-west-2,eu-west-1 Name=orders-db)
  snapshot us-east-1 dr:copy-to=true Name=web >/dev/null
  snapshot us-east-1 "Name=scratch (untagged: never copied)" >/dev/null
  # Copies an earlier run made of one volume, and someone else's snapshot.
  for day in 1 2 3 4; do
    snapshot us-west-2 dr:managed-by=snapshot-copier dr:source-region=us-east-1 \
      dr:source-volume-id=vol-0feedfacefeedface "dr:source-snapshot-id=snap-0old$(printf %013d "$day")" \
      "Name=old copy $day" >/dev/null
  done
  snapshot us-west-2 dr:source-volume-id=vol-0feedfacefeedface "Name=unmanaged: never pruned" >/dev/null
}

# snapshot REGION KEY=VALUE...: a snapshot of a new volume, with these tags;
# prints its id.
snapshot() {
  local region=$1 volume tag tags=""
  shift
  for tag in "$@"; do tags+="${tags:+, }{\"Key\": \"${tag%%=*}\", \"Value\": \"${tag#*=}\"}"; done
  volume=$(aws_in "$region" ec2 create-volume --availability-zone "${region}a" --size 8 --query VolumeId --output text)
  aws_in "$region" ec2 create-snapshot --volume-id "$volume" --query SnapshotId --output text \
    --tag-specifications "[{\"ResourceType\": \"snapshot\", \"Tags\": [$tags]}]"
}

# show_snapshots REGION: what the region holds.
show_snapshots() { aws_in "$1" ec2 describe-snapshots --owner-ids self --output json | view snapshots "$1" -; }

# local_event_snapshot_copier EVENT OUT: EVENT with its us-east-1 snapshot ids
# (made up in the samples, unknown to moto) replaced by the seeded one.
local_event_snapshot_copier() {
  sed -E "s#(arn:aws:ec2::us-east-1:snapshot/)snap-[0-9a-f]+#\1$announced#g" "$1" >"$2"
  grep -q "snapshot/$announced\"" "$2" || { echo "$1: no us-east-1 snapshot id to replace" >&2; return 1; }
}

# The worker's aws CLI (pointed at moto) and a recorder instead of shutdown,
# for running a worker's user data locally.
services_transcode_launcher() {
  mkdir -p "$work/worker-bin"
  cat >"$work/worker-bin/aws" <<SH
#!/bin/bash
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
exec "$root/.venv/bin/aws" --endpoint-url "http://127.0.0.1:$moto_port" "\$@"
SH
  cat >"$work/worker-bin/shutdown" <<SH
#!/bin/bash
case "\$*" in
  *now*) echo "    (worker called shutdown \$*: the instance would terminate now)" ;;
  *) echo "    (worker armed its dead-man switch: shutdown \$*)" ;;
esac
SH
  chmod +x "$work/worker-bin/aws" "$work/worker-bin/shutdown"
  run_env AWS_CLI_PATH "$work/worker-bin/aws"
}
seed_transcode_launcher() {
  launch_template "$(fn_env transcode-launcher LAUNCH_TEMPLATE_NAME)"
  tables create "$(fn_env transcode-launcher JOBS_TABLE)" pk
  "$work/worker-bin/aws" --region us-east-1 s3api create-bucket --bucket "$(fn_env transcode-launcher INPUT_BUCKET)" >/dev/null
}

# MariaDB with table logging and RDS's rotate procedures, the archive bucket
# and the log_rotator password secret in moto.
services_rds_log_rotator() {
  start_mariadb "$work/mariadb.log"
  rds_archive_setup "$(fn_env rds-log-rotator ARCHIVE_BUCKET)"
  run_env DB_INSTANCES "orders-db=127.0.0.1:$mariadb_port"
  run_env SECRET_ARN "$rds_secret"
}
seed_rds_log_rotator() { :; }
