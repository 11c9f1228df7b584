# --- Everything below is fixed text; the values above are data. ---
# Runs as root under cloud-init with a bare PATH and no profile, so every
# program it needs is found explicitly, and every path it builds is quoted.
export LC_ALL=C
JOB_STARTED=$(date +%s)
WORK=$(mktemp -d "${TRANSCODE_WORK_ROOT:-/var/tmp}/transcode.XXXXXX")
STATUS=failure
ERROR=""
FFMPEG=""
FFMPEG_EXIT=""
TIMED_OUT=false
SEARCHED=""
UPLOADED=""
case "$OUTPUT_PREFIX" in
  "") DEST="$JOB_ID/" ;;
  *) DEST="${OUTPUT_PREFIX%/}/$JOB_ID/" ;;
esac

json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  s=$(printf '%s' "$s" | tr -d '\000-\037'; printf x)
  printf '"%s"' "${s%x}"
}

# The first executable named $2 in the colon-separated directories $1.
find_program() {
  local dir
  local IFS=:
  for dir in $1; do
    if [ -n "$dir" ] && [ -x "$dir/$2" ]; then
      printf '%s' "$dir/$2"
      return 0
    fi
  done
  return 1
}

AWS=""
if [ -n "$AWS_CLI_PATH" ]; then
  [ -x "$AWS_CLI_PATH" ] && AWS=$AWS_CLI_PATH
else
  AWS=$(find_program "$PROGRAM_SEARCH_DIRS:/usr/local/aws-cli/v2/current/bin" aws) || AWS=""
fi

upload() { # local file, key
  "$AWS" s3api put-object --region "$REGION" --bucket="$OUTPUT_BUCKET" --key="$2" --body "$1" >/dev/null
}

finish() {
  local code=$?
  set +e
  trap - EXIT
  local tail_text=""
  if [ -f "$WORK/ffmpeg.log" ]; then
    tail_text=$(tail -n 20 "$WORK/ffmpeg.log")
  fi
  if [ "$code" -eq 0 ]; then STATUS=success; fi
  {
    printf '{"jobId":%s,"status":%s,"exitCode":%d,' "$(json_string "$JOB_ID")" "$(json_string "$STATUS")" "$code"
    printf '"durationSeconds":%d,"source":%s,' "$(( $(date +%s) - JOB_STARTED ))" "$SOURCE_JSON"
    printf '"outputs":[%s],"ffmpeg":%s,"ffmpegExitCode":%s,"timedOut":%s,' "$UPLOADED" "$(json_string "$FFMPEG")" "${FFMPEG_EXIT:-null}" "$TIMED_OUT"
    printf '"maxRuntimeSeconds":%d,"error":%s,"searchedPaths":%s,"path":%s,' "$MAX_RUNTIME" "$(json_string "$ERROR")" "$(json_string "$SEARCHED")" "$(json_string "$PATH")"
    printf '"stderrTail":%s}\n' "$(json_string "$tail_text")"
  } > "$WORK/status.json"
  cat "$WORK/status.json" >&2
  if [ -n "$AWS" ]; then
    upload "$WORK/status.json" "${DEST}status.json" || echo "transcode: could not upload status.json" >&2
  fi
  rm -rf "$WORK"
  # Shutting down terminates the instance (InstanceInitiatedShutdownBehavior).
  if [ -n "${TRANSCODE_SHUTDOWN_COMMAND:-}" ]; then
    "$TRANSCODE_SHUTDOWN_COMMAND"
  else
    shutdown -h now
  fi
  exit "$code"
}
trap finish EXIT

fail() { # exit code, message
  ERROR=$2
  echo "transcode: $2" >&2
  exit "$1"
}

if [ -z "$AWS" ]; then
  fail 127 "aws CLI not found (AWS_CLI_PATH=${AWS_CLI_PATH:-unset}; searched $PROGRAM_SEARCH_DIRS)"
fi
if [ -n "$FFMPEG_PATH" ]; then
  SEARCHED=$FFMPEG_PATH
  [ -x "$FFMPEG_PATH" ] && FFMPEG=$FFMPEG_PATH
else
  SEARCHED=$PROGRAM_SEARCH_DIRS
  FFMPEG=$(find_program "$PROGRAM_SEARCH_DIRS" ffmpeg) || FFMPEG=""
fi
if [ -z "$FFMPEG" ]; then
  fail 127 "ffmpeg not found: searched $SEARCHED with PATH=$PATH"
fi

# --key=VALUE: a key starting with "-" is never read as an option.
"$AWS" s3api get-object --region "$REGION" --bucket="$SOURCE_BUCKET" --key="$SOURCE_KEY" \
  "$WORK/input" >/dev/null || fail 3 "download of the source object failed"

mkdir "$WORK/out"
cd "$WORK/out"
# The watchdog: TERM at MAX_RUNTIME, KILL 30 s later.
timeout --kill-after=30 "$MAX_RUNTIME" "$FFMPEG" -hide_banner -nostdin -nostats -y \
  -i "$WORK/input" "${FFMPEG_ARGS[@]}" 2> "$WORK/ffmpeg.log" || FFMPEG_EXIT=$?
if [ -n "$FFMPEG_EXIT" ]; then
  if [ "$FFMPEG_EXIT" -eq 124 ] || [ "$FFMPEG_EXIT" -eq 137 ]; then
    TIMED_OUT=true
    fail 124 "ffmpeg ran longer than MAX_RUNTIME=${MAX_RUNTIME}s and was killed"
  fi
  fail 2 "ffmpeg exited with status $FFMPEG_EXIT"
fi
FFMPEG_EXIT=0
for output in "${OUTPUTS[@]}"; do
  [ -s "$output" ] || fail 2 "ffmpeg produced no $output"
  upload "$output" "$DEST$output" || fail 3 "upload of $output failed"
  UPLOADED="$UPLOADED${UPLOADED:+,}$(json_string "$DEST$output")"
done
