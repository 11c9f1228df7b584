#!/usr/bin/env bash
# `make bench`: release binaries built as Lambda ships them
# (cargo lambda build --release), measured under a local Runtime API against
# moto, medians written to BENCHMARKS.md. A benchmark, not a test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
work="$root/.demo/bench"
rm -rf "$work" && mkdir -p "$work"
runs=${BENCH_RUNS:-7}
functions=(cfn-responder kinesis-to-dynamodb ses-bounce-handler snapshot-copier transcode-launcher rds-log-rotator)
# BENCH_ONLY=<function> builds and measures that function alone and replaces
# only its section(s) of BENCHMARKS.md.
only=${BENCH_ONLY:-}
if [ -n "$only" ] && [[ " ${functions[*]} " != *" $only "* ]]; then
  echo "BENCH_ONLY: unknown function '$only' (one of: ${functions[*]})" >&2
  exit 2
fi

# One function's bootstrap, as Lambda ships it, unzipped into $work/<function>.
build_function() {
  cargo lambda build --release --quiet --bin "$1" --output-format zip
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("bootstrap", sys.argv[2])' \
    "target/lambda/$1/bootstrap.zip" "$work/$1"
  chmod +x "$work/$1/bootstrap"
}

# A crate's harness-less bench (benches/<name>.rs), built with the release
# profile (the one `cargo bench` inherits); prints the binary's path. The
# binary is run from the repository root, where its sample events resolve.
build_bench() {
  cargo build --release --quiet -p "$1" --bench "$2" --message-format=json |
    python3 -c 'import json, sys
paths = [m["executable"] for m in map(json.loads, sys.stdin)
         if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]]
print(paths[-1])' "$2"
}

# rds-log-rotator: a dry run through the binary, then archive_rate: 100,000
# statements, and backups of 100,000 and 2,000,000 rows (issue 12, point 11:
# the rate must stay within 1.2x and memory bounded by one part).
measure_rds() {
  cargo build --quiet -p suite-tests --bin local-mariadb
  archive_rate_bin=$(build_bench rds-log-rotator archive_rate)
  echo "Measuring rds-log-rotator ($runs runs, then 100,000 statements, then backups of 100,000 and 2,000,000 rows)..."
  start_mariadb "$work/mariadb.log"
  rds_archive_setup
  # A dry run: one connection, the pre-checks and counts, the watermark reads.
  rotator=$(target/release/lambda-bench --function "rds-log-rotator" \
    --binary "$work/rds-log-rotator/bootstrap" --zip target/lambda/rds-log-rotator/bootstrap.zip \
    --runs "$runs" "${moto_env[@]}" --env "DB_INSTANCES=orders-db=127.0.0.1:$mariadb_port" \
    --env "SECRET_ARN=$rds_secret" --env DB_TLS=disabled --env ARCHIVE_BUCKET=rds-log-archive \
    --env S3_FORCE_PATH_STYLE=true --event events/rds-log-rotator/02-manual-dry-run.json)
  archive_rate=$("$archive_rate_bin" --header
    "$archive_rate_bin"
    "$archive_rate_bin" --backup 100000
    "$archive_rate_bin" --backup 2000000)
  archive_ratio=$(echo "$archive_rate" | awk -F'|' '/filled into/ {gsub(/ /, "", $7); rate[++n] = $7}
    END {printf "%.2f", rate[1] / rate[2]}')
}

rds_section() {
  echo "$rotator"
  echo
  echo "$archive_rate"
  echo
  echo "The dry run above connects to the local MariaDB (password from moto Secrets Manager), runs the"
  echo "pre-checks and counts, and reads the watermarks from moto S3. The second table is"
  echo "benches/archive_rate.rs, one run of the rotator over the slow log through the real MySQL and"
  echo "S3 adapters: archive (gzip JSON lines, parts of at most 50,000 rows or 16 MB), digest and rotate."
  echo "Its first row: 100,000 statements through the mariadb client with long_query_time=0, rotated"
  echo "and archived. The others: rows of the same four shapes written into a table laid out like"
  echo "slow_log by one INSERT ... SELECT from MariaDB's sequence engine and renamed into place as"
  echo "mysql.slow_log_backup, which the rotator archives before rotating."
  echo "The backup is read by one streamed SELECT per run, so the rate holds as it grows: the"
  echo "100,000-row rate divided by the 2,000,000-row rate is ${archive_ratio} (target, issue 12: at most 1.2),"
  echo "and memory is bounded by one part, whatever the row count. Target (issue 7): peak RSS below 64 MB."
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
responder=$(target/release/lambda-bench --function cfn-responder \
  --binary "$work/cfn-responder/bootstrap" --zip target/lambda/cfn-responder/bootstrap.zip \
  --runs "$runs" "${moto_env[@]}" --env ALLOW_LOCAL_RESPONSE_URL=true \
  --event events/cfn-responder/05-delete-after-failed-create.json \
  --event events/cfn-responder/04-create-invalid-properties.json \
  --event events/cfn-responder/01-create-ami-lookup.json)
}

cfn_section() {
  echo "$responder"
  echo
  echo "Targets (issue 2): init <= 15 ms, warm invoke excluding the PUT <= 2 ms,"
  echo "peak RSS <= 20 MB, zip <= 4 MB. The AmiLookup rows include moto's"
  echo "DescribeImages round trip (a Python server), which a real EC2 call replaces;"
  echo "the other two rows do no AWS I/O and measure the responder itself."
}

measure_kinesis() {
echo "Measuring kinesis-to-dynamodb..."
# 10,000 records, distinct keys, ~500 bytes each.
python3 - "$work/kinesis-10k.json" <<'PY'
import base64, json, sys
records = []
for i in range(10_000):
    seq = f"4959033827149025660855969253836157109592157598913{i:07d}"
    data = {"id": f"order-{i:06d}", "customer": f"c-{i % 97}", "total": 129.95, "items": [{"sku": "A-1", "qty": 2}], "note": ""}
    data["note"] = "x" * (500 - len(json.dumps(data, separators=(",", ":"))))
    raw = json.dumps(data, separators=(",", ":")).encode()
    records.append({"eventID": f"shardId-000000000000:{seq}", "eventSource": "aws:kinesis",
                    "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench",
                    "kinesis": {"partitionKey": data["id"], "sequenceNumber": seq, "data": base64.b64encode(raw).decode(),
                                "approximateArrivalTimestamp": 1763750000.123, "kinesisSchemaVersion": "1.0"}})
json.dump({"Records": records}, open(sys.argv[1], "w"))
PY
kinesis_common=(--binary "$work/kinesis-to-dynamodb/bootstrap" --zip target/lambda/kinesis-to-dynamodb/bootstrap.zip
  --dynamodb-latency-ms 10 --table items:pk,sk --table rejects:shardId,position
  --env AWS_ACCESS_KEY_ID=testing --env AWS_SECRET_ACCESS_KEY=testing --env AWS_LAMBDA_LOG_LEVEL=WARN
  --env TABLE_NAME=items --env PARTITION_KEY=pk --env REJECTS_TABLE_NAME=rejects --env MAX_IN_FLIGHT=16
  --event "$work/kinesis-10k.json")
kinesis_append=$(target/release/lambda-bench --function "kinesis-to-dynamodb, MODE=append" --runs 5 --warm 2 \
  "${kinesis_common[@]}" --env MODE=append --env SORT_KEY=sk)
kinesis_latest=$(target/release/lambda-bench --function "kinesis-to-dynamodb, MODE=latest" --runs 3 --warm 1 \
  "${kinesis_common[@]}" --env MODE=latest --table items:pk)
record_cost=$("$(build_bench kinesis-to-dynamodb record_cost)")
}

kinesis_section() {
  echo "$kinesis_append"
  echo
  echo "$kinesis_latest"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "$record_cost"
  echo
  echo "The DynamoDB stand-in (tests/src/dynamodb.rs) answers every call after 10 ms, no faults;"
  echo "a 10,000-record batch with distinct keys, MAX_IN_FLIGHT=16. Floors: append"
  echo "ceil(10000/25) / 16 x 10 ms = 250 ms (target: within 1.5x, 375 ms); latest, one"
  echo "conditional PutItem per item, 10000 / 16 x 10 ms = 6250 ms."
  echo "Targets (issue 3): per-record cost <= 2 us, init <= 15 ms, RSS <= 30 MB for a"
  echo "10,000-record batch, zip <= 5 MB."
  echo
  echo "The stand-in shares the machine's two cores with the function; it sleeps its latency on a"
  echo "thread, because tokio's timer rounds 10 ms up to about 11. The per-record cost serializes"
  echo "with a direct writer like the SDK's own (benches/record_cost.rs). Most of it is building"
  echo "the SDK's item type, a HashMap of AttributeValue with one allocation per name and string:"
  echo "2 us would need a hand-written request body instead of the SDK's types."
}

measure_ses() {
echo "Measuring ses-bounce-handler ($runs runs)..."
# The DynamoDB stand-in, storing nothing: every invoke reads an empty entry
# and writes it, the full path, for both recipients.
ses=$(target/release/lambda-bench --function "ses-bounce-handler" \
  --binary "$work/ses-bounce-handler/bootstrap" --zip target/lambda/ses-bounce-handler/bootstrap.zip \
  --runs "$runs" --dynamodb-latency-ms 0 --dynamodb-forget true --table suppression:address \
  --env AWS_ACCESS_KEY_ID=testing --env AWS_SECRET_ACCESS_KEY=testing --env AWS_LAMBDA_LOG_LEVEL=WARN \
  --env SUPPRESSION_TABLE=suppression --event events/ses-bounce-handler/01-permanent-bounce-two-recipients.json)
ses_cost=$("$(build_bench ses-bounce-handler invoke_cost)" | tail -n 1)
}

ses_section() {
  echo "$ses"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "$ses_cost"
  echo
  echo "The invokes above go to the DynamoDB stand-in with no latency: two GetItem and two"
  echo "PutItem round trips over loopback are included. The in-memory row is the handler alone."
  echo "Targets (issue 4): init <= 15 ms, warm invoke of the two-recipient bounce <= 2 ms"
  echo "excluding I/O, RSS <= 20 MB."
}

measure_copier() {
echo "Measuring snapshot-copier ($runs runs)..."
# A failed createSnapshot: no EC2 call, so init, RSS and the invoke are the function's own.
copier=$(target/release/lambda-bench --function "snapshot-copier" \
  --binary "$work/snapshot-copier/bootstrap" --zip target/lambda/snapshot-copier/bootstrap.zip \
  --runs "$runs" "${moto_env[@]}" --event events/snapshot-copier/02-create-snapshot-failed.json)
sweep_cost=$("$(build_bench snapshot-copier sweep_cost)")
}

copier_section() {
  echo "$copier"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "$sweep_cost"
  echo
  echo "The sweep runs against an in-memory EC2 that answers each call after 10 ms"
  echo "(functions/snapshot-copier/src/testing.rs), with MAX_CONCURRENT_COPIES raised to 1000 so that"
  echo "the limit does not hold copies back. Targets (issue 6): init <= 15 ms, RSS <= 25 MB,"
  echo "zip <= 6 MB, sweep within 2x of the floor."
}

measure_transcode() {
echo "Measuring transcode-launcher ($runs runs)..."
.venv/bin/python scripts/demo_ec2.py "http://127.0.0.1:$moto_port" launch-template
.venv/bin/python scripts/demo_dynamodb.py "http://127.0.0.1:$moto_port" create transcode-jobs pk
# A folder marker: skipped without any AWS call. The put launches once, then
# every later run is a duplicate found by one GetItem in the job ledger.
transcode=$(target/release/lambda-bench --function "transcode-launcher" \
  --binary "$work/transcode-launcher/bootstrap" --zip target/lambda/transcode-launcher/bootstrap.zip \
  --runs "$runs" "${moto_env[@]}" --env INPUT_BUCKET=video-uploads-123456789012 --env INPUT_PREFIX=videos \
  --env OUTPUT_BUCKET=video-uploads-123456789012 --env OUTPUT_PREFIX=transcoded \
  --env LAUNCH_TEMPLATE_NAME=transcode-worker --env JOBS_TABLE=transcode-jobs \
  --event events/transcode-launcher/05-folder-marker.json \
  --event events/transcode-launcher/01-put-holiday-video.json)
transcode_cost=$("$(build_bench transcode-launcher launch_cost)" | tail -n 1)
}

transcode_section() {
  echo "$transcode"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "$transcode_cost"
  echo
  echo "The in-memory row is the handler alone (benches/launch_cost.rs): decode, filter, job id,"
  echo "user-data render and tags, with an in-memory fleet. The put row through the binary includes"
  echo "moto's DescribeInstances round trip. Targets (issue 5): init <= 15 ms, warm invoke <= 3 ms"
  echo "excluding I/O, RSS <= 25 MB, zip <= 6 MB."
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

section() {
  case "$1" in
    cfn-responder) cfn_section ;;
    kinesis-to-dynamodb) kinesis_section ;;
    ses-bounce-handler) ses_section ;;
    snapshot-copier) copier_section ;;
    transcode-launcher) transcode_section ;;
    rds-log-rotator) rds_section ;;
  esac
}

selected=("${functions[@]}")
[ -n "$only" ] && selected=("$only")
echo "Building release binaries (cargo lambda build --release)..."
for function in "${selected[@]}"; do build_function "$function"; done
cargo build --release --quiet -p suite-tests --bin lambda-bench
start_moto_once
for function in "${selected[@]}"; do measure "$function"; done

if [ -n "$only" ]; then
  section "$only" >"$work/section.md"
  # Its part runs from its first heading ("## <function>" or
  # "## <function>, ...") to the next heading of another function (or the end).
  python3 - BENCHMARKS.md "$work/section.md" "$only" <<'PY'
import re, sys
path, section, name = sys.argv[1], open(sys.argv[2]).read().rstrip("\n") + "\n", sys.argv[3]
text = open(path).read()
own = "^## " + re.escape(name) + r"(?:,[^\n]*)?$"
start = re.search(own, text, re.M).start()
other = re.compile(r"^## ", re.M)
end = start
while (heading := other.search(text, end + 1)) and re.match(own, text[heading.start():], re.M):
    end = heading.start()
heading = other.search(text, end + 1)
end = heading.start() if heading else len(text)
text = text[:start] + section + ("\n" + text[end:] if end < len(text) else "")
open(path, "w").write(text)
PY
  cat "$work/section.md"
  exit 0
fi

{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` on $(date -u +%Y-%m-%d). Release binaries from"
  echo "\`cargo lambda build --release\` (x86_64), run under the suite's own Runtime API"
  echo "stand-in (tests/src/runtime_api.rs) on 127.0.0.1, with moto as AWS."
  echo
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores,"
  echo "$(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r), $(rustc --version)."
  echo
  for function in "${functions[@]}"; do
    [ "$function" = "${functions[0]}" ] || echo
    section "$function"
  done
} >BENCHMARKS.md
cat BENCHMARKS.md
