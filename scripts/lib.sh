# shellcheck shell=bash
# Sourced by demo.sh, invoke.sh and bench.sh: the venv on PATH, loopback
# ports, moto through the aws CLI, the functions' local environments, and
# cleanup of every background process started, on exit, failure or Ctrl-C.
# The kit's binaries (target/debug/demo-view, lambda-env, ...) are built
# by the sourcing script before they are used.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit
export PATH="$root/.venv/bin:$PATH"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # `wait` only waits for children: MariaDB's server is a grandchild, and its
  # files must not be removed while it still writes them (up to 10 s each).
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# view ARGS: the kit's JSON reader (tests/src/bin/demo_view.rs).
view() { target/debug/demo-view "$@"; }

free_port() { view free-port; }

# wait_port PORT WHAT: waits up to 30 s for a listener on 127.0.0.1:PORT.
wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on 127.0.0.1:$1 ($2)" >&2
  return 1
}

# start_moto LOGFILE: moto on a free loopback port; sets moto_port.
start_moto() {
  moto_port=$(free_port)
  moto_server -H 127.0.0.1 -p "$moto_port" >"$1" 2>&1 &
  pids+=($!)
  wait_port "$moto_port" moto
}

# start_mariadb LOGFILE: a local MariaDB with table logging and RDS's rotate
# procedures (target/debug/local-mariadb); sets mariadb_port and
# mariadb_socket, and stops the server on exit.
start_mariadb() {
  TMPDIR="$work" target/debug/local-mariadb >"$1" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do
    [ -s "$1" ] && break
    sleep 0.1
  done
  read -r mariadb_port mariadb_pid mariadb_socket <"$1" || { echo "MariaDB did not start; see $1" >&2; return 1; }
  pids+=("$mariadb_pid")
}

# aws_in REGION ARGS: the venv's aws CLI against moto (start_moto first).
aws_in() {
  local region=$1
  shift
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    .venv/bin/aws --endpoint-url "http://127.0.0.1:$moto_port" --region "$region" "$@"
}
aws_local() { aws_in us-east-1 "$@"; }

# tables create TABLE KEY [SORTKEY]: a string-keyed on-demand table in moto.
# tables show TABLE: its items, one a line, in plain JSON (N stays text).
# tables get TABLE KEY VALUE: one item, read consistently.
tables() {
  local command=$1 table=$2
  shift 2
  case $command in
    create)
      local key kind=HASH definitions=() schema=()
      for key in "$@"; do
        definitions+=("AttributeName=$key,AttributeType=S")
        schema+=("AttributeName=$key,KeyType=$kind")
        kind=RANGE
      done
      aws_local dynamodb create-table --table-name "$table" --billing-mode PAY_PER_REQUEST \
        --attribute-definitions "${definitions[@]}" --key-schema "${schema[@]}" >/dev/null ;;
    show) aws_local dynamodb scan --table-name "$table" --output json | view dynamodb-scan "$table" - ;;
    get)
      aws_local dynamodb get-item --table-name "$table" --consistent-read --output json \
        --key "{\"$1\": {\"S\": \"$2\"}}" | view dynamodb-item "$table" "$1" "$2" - ;;
    *) echo "tables: unknown command $command" >&2; return 2 ;;
  esac
}

# launch_template NAME: the transcode workers' launch template in moto.
launch_template() {
  aws_local ec2 create-launch-template --launch-template-name "$1" \
    --launch-template-data '{"ImageId": "ami-12c6146b", "InstanceType": "c6i.large"}' >/dev/null
}

# rds_archive_setup BUCKET: the archive bucket and the log_rotator password
# secret in moto, for rds-log-rotator; sets rds_secret.
rds_archive_setup() {
  aws_local s3api create-bucket --bucket "$1" >/dev/null
  rds_secret=$(aws_local secretsmanager create-secret --name rds-log-rotator/orders-db \
    --secret-string '{"username": "log_rotator", "password": "rotator-Pa55word"}' --query ARN --output text)
}

# Every function's local environment, as function_env[FUNCTION/VAR]
# (target/debug/lambda-env reads [package.metadata.lambda.env]).
declare -A function_env=()
load_function_envs() {
  local package assignment
  while read -r package assignment; do
    function_env["$package/${assignment%%=*}"]=${assignment#*=}
  done < <(target/debug/lambda-env all)
}

# fn_env FUNCTION VAR: VAR from FUNCTION's local environment.
fn_env() {
  if [ -z "${function_env[$1/$2]+set}" ]; then
    echo "$2 is missing from [package.metadata.lambda.env] in functions/$1/Cargo.toml" >&2
    return 1
  fi
  printf '%s\n' "${function_env[$1/$2]}"
}

# The functions, one per directory under functions/.
functions=()
for function_dir in functions/*/; do functions+=("$(basename "$function_dir")"); done
unset function_dir
