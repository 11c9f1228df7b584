# Sourced by demo.sh and bench.sh: the venv on PATH, loopback ports, and
# cleanup of every background process started, on exit, failure or Ctrl-C.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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

# aws_local ARGS: the venv's aws CLI against moto (start_moto first).
aws_local() {
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    .venv/bin/aws --endpoint-url "http://127.0.0.1:$moto_port" --region us-east-1 "$@"
}

# rds_archive_setup [BUCKET]: the archive bucket (default rds-log-archive) and
# the log_rotator password secret in moto, for rds-log-rotator; sets rds_secret.
rds_archive_setup() {
  aws_local s3api create-bucket --bucket "${1:-rds-log-archive}" >/dev/null
  rds_secret=$(aws_local secretsmanager create-secret --name rds-log-rotator/orders-db \
    --secret-string '{"username": "log_rotator", "password": "rotator-Pa55word"}' --query ARN --output text)
}
