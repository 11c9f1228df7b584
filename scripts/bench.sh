#!/usr/bin/env bash
# `make bench`: release binaries built as Lambda ships them
# (cargo lambda build --release), measured under a local Runtime API against
# moto, medians written to BENCHMARKS.md. A benchmark, not a test.
#
# BENCHMARKS.md is scripts/BENCHMARKS.md.in with each {{placeholder}} filled
# from scripts/bench-values/<placeholder>.md: the figures of the last run,
# kept so that BENCH_ONLY=<function> measures that function alone and
# re-renders the whole file with the others' figures as they were.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
work="$root/.demo/bench"
rm -rf "$work" && mkdir -p "$work/values"
saved=scripts/bench-values
runs=${BENCH_RUNS:-7}
only=${BENCH_ONLY:-}
if [ -n "$only" ] && [[ " ${functions[*]} " != *" $only "* ]]; then
  echo "BENCH_ONLY: unknown function '$only' (one of: ${functions[*]})" >&2
  exit 2
fi

# value NAME: stdin is the figure for {{NAME}} in the template.
value() { cat >"$work/values/$1.md"; }

# One function's bootstrap, as Lambda ships it, unzipped into $work/<function>.
build_function() {
  cargo lambda build --release --quiet --bin "$1" --output-format zip
  unzip -q -o "target/lambda/$1/bootstrap.zip" bootstrap -d "$work/$1"
  chmod +x "$work/$1/bootstrap"
}

# A crate's harness-less bench (benches/<name>.rs), built with the release
# profile (the one `cargo bench` inherits); prints the binary's path. The
# binary is run from the repository root, where its sample events resolve.
build_bench() {
  local executable
  executable=$(cargo build --release --quiet -p "$1" --bench "$2" --message-format=json |
    grep '"reason":"compiler-artifact"' | grep -F "\"name\":\"$2\"" |
    sed -n -E 's/.*"executable":"([^"]+)".*/\1/p' | tail -n 1)
  [ -n "$executable" ] || { echo "cargo built no executable for $1's bench $2" >&2; return 1; }
  echo "$executable"
}

# rds-log-rotator: a dry run through the binary, then archive_rate: 100,000
# statements, and backups of 100,000 and 2,000,000 rows (the rate must stay
# within 1.2x and memory bounded by one part).
measure_rds() {
  cargo build --quiet -p suite-tests --bin local-mariadb
  archive_rate_bin=$(build_bench rds-log-rotator archive_rate)
  echo "Measuring rds-log-rotator ($runs runs, then 100,000 statements, then backups of 100,000 and 2,000,000 rows)..."
  start_mariadb "$work/mariadb.log"
  local bucket
  bucket=$(fn_env rds-log-rotator ARCHIVE_BUCKET)
  rds_archive_setup "$bucket"
  # A dry run: one connection, the pre-checks and counts, the watermark reads.
  target/release/lambda-bench --function "rds-log-rotator" \
    --binary "$work/rds-log-rotator/bootstrap" --zip target/lambda/rds-log-rotator/bootstrap.zip \
    --runs "$runs" "${moto_env[@]}" --env "DB_INSTANCES=orders-db=127.0.0.1:$mariadb_port" \
    --env "SECRET_ARN=$rds_secret" --env DB_TLS=disabled --env "ARCHIVE_BUCKET=$bucket" \
    --env S3_FORCE_PATH_STYLE=true --event events/rds-log-rotator/02-manual-dry-run.json | value rds-log-rotator.table
  { "$archive_rate_bin" --header
    "$archive_rate_bin"
    "$archive_rate_bin" --backup 100000
    "$archive_rate_bin" --backup 2000000; } | value rds-log-rotator.archive_rate
  awk -F'|' '/filled into/ {gsub(/ /, "", $7); rate[++n] = $7} END {printf "%.2f\n", rate[1] / rate[2]}' \
    "$work/values/rds-log-rotator.archive_rate.md" | value rds-log-rotator.archive_ratio
}

moto_env=()
start_moto_once() {
  [ ${#moto_env[@]} -gt 0 ] && return
  start_moto "$work/moto.log"
  moto_env=(--env "AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port" --env AWS_ACCESS_KEY_ID=testing
            --env AWS_SECRET_ACCESS_KEY=testing --env AWS_LAMBDA_LOG_LEVEL=WARN)
}

measure_cfn() {
echo "Measuring cfn-responder ($runs runs)..."
target/release/lambda-bench --function cfn-responder \
  --binary "$work/cfn-responder/bootstrap" --zip target/lambda/cfn-responder/bootstrap.zip \
  --runs "$runs" "${moto_env[@]}" --env ALLOW_LOCAL_RESPONSE_URL=true \
  --event events/cfn-responder/05-delete-after-failed-create.json \
  --event events/cfn-responder/04-create-invalid-properties.json \
  --event events/cfn-responder/01-create-ami-lookup.json | value cfn-responder.table
}

measure_kinesis() {
echo "Measuring kinesis-to-dynamodb..."
# 10,000 records, distinct keys, 500 bytes each.
target/release/lambda-bench kinesis-event 10000 500 >"$work/kinesis-10k.json"
# shellcheck disable=SC2054 # --table NAME:KEY,KEY is one argument
kinesis_common=(--binary "$work/kinesis-to-dynamodb/bootstrap" --zip target/lambda/kinesis-to-dynamodb/bootstrap.zip
  --dynamodb-latency-ms 10 --table items:pk,sk --table rejects:shardId,position
  --env AWS_ACCESS_KEY_ID=testing --env AWS_SECRET_ACCESS_KEY=testing --env AWS_LAMBDA_LOG_LEVEL=WARN
  --env TABLE_NAME=items --env PARTITION_KEY=pk --env REJECTS_TABLE_NAME=rejects --env MAX_IN_FLIGHT=16
  --event "$work/kinesis-10k.json")
target/release/lambda-bench --function "kinesis-to-dynamodb, MODE=append" --runs 5 --warm 2 \
  "${kinesis_common[@]}" --env MODE=append --env SORT_KEY=sk | value kinesis-to-dynamodb.append
target/release/lambda-bench --function "kinesis-to-dynamodb, MODE=latest" --runs 3 --warm 1 \
  "${kinesis_common[@]}" --env MODE=latest --table items:pk | value kinesis-to-dynamodb.latest
"$(build_bench kinesis-to-dynamodb record_cost)" | value kinesis-to-dynamodb.record_cost
}

measure_ses() {
echo "Measuring ses-bounce-handler ($runs runs)..."
# The DynamoDB stand-in, storing nothing: every invoke reads an empty entry
# and writes it, the full path, for both recipients.
table=$(fn_env ses-bounce-handler SUPPRESSION_TABLE)
target/release/lambda-bench --function "ses-bounce-handler" \
  --binary "$work/ses-bounce-handler/bootstrap" --zip target/lambda/ses-bounce-handler/bootstrap.zip \
  --runs "$runs" --dynamodb-latency-ms 0 --dynamodb-forget true --table "$table:address" \
  --env AWS_ACCESS_KEY_ID=testing --env AWS_SECRET_ACCESS_KEY=testing --env AWS_LAMBDA_LOG_LEVEL=WARN \
  --env "SUPPRESSION_TABLE=$table" --event events/ses-bounce-handler/01-permanent-bounce-two-recipients.json \
  | value ses-bounce-handler.table
"$(build_bench ses-bounce-handler invoke_cost)" | tail -n 1 | value ses-bounce-handler.invoke_cost
}

measure_copier() {
echo "Measuring snapshot-copier ($runs runs)..."
# A failed createSnapshot: no EC2 call, so init, RSS and the invoke are the function's own.
target/release/lambda-bench --function "snapshot-copier" \
  --binary "$work/snapshot-copier/bootstrap" --zip target/lambda/snapshot-copier/bootstrap.zip \
  --runs "$runs" "${moto_env[@]}" --event events/snapshot-copier/02-create-snapshot-failed.json \
  | value snapshot-copier.table
"$(build_bench snapshot-copier sweep_cost)" | value snapshot-copier.sweep_cost
}

measure_transcode() {
echo "Measuring transcode-launcher ($runs runs)..."
local variable transcode_env=()
for variable in INPUT_BUCKET INPUT_PREFIX OUTPUT_BUCKET OUTPUT_PREFIX LAUNCH_TEMPLATE_NAME JOBS_TABLE; do
  transcode_env+=(--env "$variable=$(fn_env transcode-launcher "$variable")")
done
launch_template "$(fn_env transcode-launcher LAUNCH_TEMPLATE_NAME)"
tables create "$(fn_env transcode-launcher JOBS_TABLE)" pk
# A folder marker: skipped without any AWS call. The put launches once, then
# every later run is a duplicate found by one GetItem in the job ledger.
target/release/lambda-bench --function "transcode-launcher" \
  --binary "$work/transcode-launcher/bootstrap" --zip target/lambda/transcode-launcher/bootstrap.zip \
  --runs "$runs" "${moto_env[@]}" "${transcode_env[@]}" \
  --event events/transcode-launcher/05-folder-marker.json \
  --event events/transcode-launcher/01-put-holiday-video.json | value transcode-launcher.table
"$(build_bench transcode-launcher launch_cost)" | tail -n 1 | value transcode-launcher.launch_cost
}

measure() {
  case "$1" in
    cfn-responder) measure_cfn ;;
    kinesis-to-dynamodb) measure_kinesis ;;
    ses-bounce-handler) measure_ses ;;
    snapshot-copier) measure_copier ;;
    transcode-launcher) measure_transcode ;;
    rds-log-rotator) measure_rds ;;
  esac
}

# The functions measured, all by default; their figures, with every other
# placeholder's saved one under BENCH_ONLY, fill the template.
selected=("${functions[@]}")
if [ -n "$only" ]; then
  selected=("$only")
  cp "$saved"/*.md "$work/values/" 2>/dev/null \
    || { echo "BENCH_ONLY: no saved figures in $saved/; run make bench once" >&2; exit 2; }
  rm -f "$work/values/$only".*.md
else
  date -u +%Y-%m-%d | value date
  printf '%s, %s cores,\n%s GiB, Linux %s, %s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
    "$(nproc)" "$(free -g | awk '/Mem:/ {print $2}')" "$(uname -r)" "$(rustc --version)" | value machine
fi
echo "Building release binaries (cargo lambda build --release)..."
for function in "${selected[@]}"; do build_function "$function"; done
cargo build --release --quiet -p suite-tests --bin lambda-bench
cargo build --quiet -p suite-tests --bin demo-view --bin lambda-env
load_function_envs
start_moto_once
for function in "${selected[@]}"; do measure "$function"; done

# Fails, and leaves BENCHMARKS.md and the saved figures as they were, if a
# placeholder has no figure.
target/release/lambda-bench report scripts/BENCHMARKS.md.in "$work/values" >"$work/BENCHMARKS.md"
mv "$work/BENCHMARKS.md" BENCHMARKS.md
rm -f "$saved"/*.md && mkdir -p "$saved" && cp "$work/values"/*.md "$saved/"
if [ -n "$only" ]; then
  for figure in "$saved/$only".*.md; do
    echo "== $figure"
    cat "$figure"
  done
else
  cat BENCHMARKS.md
fi
