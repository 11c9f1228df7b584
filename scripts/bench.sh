#!/usr/bin/env bash
# `make bench`: release binaries built as Lambda ships them
# (cargo lambda build --release), measured under a local Runtime API against
# moto, medians written to BENCHMARKS.md. A benchmark, not a test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
work="$root/.demo/bench"
rm -rf "$work" && mkdir -p "$work"
runs=${BENCH_RUNS:-7}

echo "Building release binaries (cargo lambda build --release)..."
cargo lambda build --release --quiet --bin cfn-responder --output-format zip
cargo build --release --quiet -p suite-tests --bin lambda-bench
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("bootstrap", sys.argv[2])' \
  target/lambda/cfn-responder/bootstrap.zip "$work/cfn-responder"
chmod +x "$work/cfn-responder/bootstrap"

start_moto "$work/moto.log"

moto_env=(--env "AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port" --env AWS_ACCESS_KEY_ID=testing
          --env AWS_SECRET_ACCESS_KEY=testing --env AWS_LAMBDA_LOG_LEVEL=WARN)

echo "Measuring cfn-responder ($runs runs)..."
responder=$(target/release/lambda-bench --function cfn-responder \
  --binary "$work/cfn-responder/bootstrap" --zip target/lambda/cfn-responder/bootstrap.zip \
  --runs "$runs" "${moto_env[@]}" --env ALLOW_LOCAL_RESPONSE_URL=true \
  --event events/cfn-responder/05-delete-after-failed-create.json \
  --event events/cfn-responder/04-create-invalid-properties.json \
  --event events/cfn-responder/01-create-ami-lookup.json)

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
  echo "$responder"
  echo
  echo "Targets (issue 2): init <= 15 ms, warm invoke excluding the PUT <= 2 ms,"
  echo "peak RSS <= 20 MB, zip <= 4 MB. The AmiLookup rows include moto's"
  echo "DescribeImages round trip (a Python server), which a real EC2 call replaces;"
  echo "the other two rows do no AWS I/O and measure the responder itself."
} >BENCHMARKS.md
cat BENCHMARKS.md
