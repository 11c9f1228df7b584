# --- Everything below is fixed text; the values above are data. ---
# Runs as root under cloud-init with a bare PATH and no profile, so every
# program it needs is found explicitly, and every path it builds is quoted.
# Nothing that can fail runs before the EXIT trap is set.
export LC_ALL=C
STATUS=failure
ERROR=""
FFMPEG=""
FFMPEG_EXIT=""
TIMED_OUT=false
SEARCHED=""
UPLOADED=""
AWS=""
WORK=""
SOURCE_URI=""
SOURCE_JSON=null

# A JSON string of any bytes, in ASCII: control characters and everything
# past ASCII escaped, invalid UTF-8 replaced by U+FFFD per maximal subpart
# (as Rust's String::from_utf8_lossy does). ffmpeg's stderr can hold anything.
json_string() {
  local -a b
  local out="" e i=0 n c cp need lo hi
  # od prints only numbers, so splitting its output is safe.
  b=($(printf '%s' "$1" | od -An -v -tu1))
  n=${#b[@]}
  while [ "$i" -lt "$n" ]; do
    c=${b[i]}
    i=$((i + 1))
    if [ "$c" -lt 128 ]; then
      if [ "$c" -eq 34 ]; then out+='\"'
      elif [ "$c" -eq 92 ]; then out+='\\'
      elif [ "$c" -eq 10 ]; then out+='\n'
      elif [ "$c" -lt 32 ] || [ "$c" -eq 127 ]; then printf -v e '\\u%04x' "$c"; out+=$e
      else printf -v e '%03o' "$c"; printf -v e "\\$e"; out+=$e
      fi
      continue
    fi
    # The lead byte gives the length; E0, ED, F0 and F4 narrow the second
    # byte (no overlongs, surrogates or code points past U+10FFFF).
    lo=128 hi=191
    if [ "$c" -ge 194 ] && [ "$c" -le 223 ]; then need=1 cp=$((c & 31))
    elif [ "$c" -ge 224 ] && [ "$c" -le 239 ]; then need=2 cp=$((c & 15))
      if [ "$c" -eq 224 ]; then lo=160; elif [ "$c" -eq 237 ]; then hi=159; fi
    elif [ "$c" -ge 240 ] && [ "$c" -le 244 ]; then need=3 cp=$((c & 7))
      if [ "$c" -eq 240 ]; then lo=144; elif [ "$c" -eq 244 ]; then hi=143; fi
    else
      out+='\ufffd'
      continue
    fi
    while [ "$need" -gt 0 ] && [ "$i" -lt "$n" ] && [ "${b[i]}" -ge "$lo" ] && [ "${b[i]}" -le "$hi" ]; do
      cp=$(((cp << 6) | (b[i] & 63)))
      i=$((i + 1)) need=$((need - 1)) lo=128 hi=191
    done
    # A broken sequence is one U+FFFD; the byte that broke it starts anew.
    if [ "$need" -gt 0 ]; then
      out+='\ufffd'
    elif [ "$cp" -ge 65536 ]; then
      printf -v e '\\u%04x\\u%04x' $((0xD800 + ((cp - 65536) >> 10))) $((0xDC00 + ((cp - 65536) & 1023)))
      out+=$e
    else
      printf -v e '\\u%04x' "$cp"
      out+=$e
    fi
  done
  printf '"%s"' "$out"
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

locate_aws() {
  if [ -n "$AWS_CLI_PATH" ]; then
    if [ -x "$AWS_CLI_PATH" ]; then AWS=$AWS_CLI_PATH; fi
  else
    AWS=$(find_program "$PROGRAM_SEARCH_DIRS:/usr/local/aws-cli/v2/current/bin" aws) || AWS=""
  fi
}

# The request is JSON rendered by the launcher: the CLI reads values inside
# --cli-input-json literally, and the text itself starts with "{", which no
# parameter-file prefix matches.
upload() { # seconds allowed, local file, request JSON
  bounded "$1" "$AWS" s3api put-object --region "$REGION" --cli-input-json "$3" --body "$2" >/dev/null
}

# The dead-man switch is armed at start for MAX_RUNTIME plus a margin; the
# download and the uploads are bounded (not the switch re-armed) so that
# `finish` always reports well within that margin, whatever S3 does.
bounded() { # seconds, command...
  timeout --kill-after="$KILL_GRACE" "$@"
}

# Shutting down terminates the instance (InstanceInitiatedShutdownBehavior).
# The test hook TRANSCODE_SHUTDOWN_COMMAND stands in for `shutdown`.
stop_instance() { # when: now or +MINUTES
  "${TRANSCODE_SHUTDOWN_COMMAND:-shutdown}" -h "$1"
}

# When `shutdown` fails nothing else stops the instance (the reconcile would
# count it live forever): power off by force, each way in turn. The test
# hook TRANSCODE_POWEROFF_COMMAND stands in for all three.
force_poweroff() {
  if [ -n "${TRANSCODE_POWEROFF_COMMAND:-}" ]; then
    "$TRANSCODE_POWEROFF_COMMAND"
    return
  fi
  systemctl poweroff --force --force || poweroff -f || echo o > /proc/sysrq-trigger
}

status_json() { # exit code
  local tail_text=""
  if [ -n "$WORK" ] && [ -f "$WORK/ffmpeg.log" ]; then
    tail_text=$(tail -n 20 "$WORK/ffmpeg.log" | tail -c 4096)
  fi
  printf '{"jobId":%s,"status":%s,"exitCode":%d,' "$(json_string "$JOB_ID")" "$(json_string "$STATUS")" "$1"
  printf '"durationSeconds":%d,"source":%s,' "$SECONDS" "$SOURCE_JSON"
  printf '"outputs":[%s],"ffmpeg":%s,"ffmpegExitCode":%s,"timedOut":%s,' "$UPLOADED" "$(json_string "$FFMPEG")" "${FFMPEG_EXIT:-null}" "$TIMED_OUT"
  printf '"maxRuntimeSeconds":%d,"error":%s,"searchedPaths":%s,"path":%s,' "$MAX_RUNTIME" "$(json_string "$ERROR")" "$(json_string "$SEARCHED")" "$(json_string "$PATH")"
  printf '"stderrTail":%s}\n' "$(json_string "$tail_text")"
}

finish() {
  local code=$?
  set +e
  trap - EXIT
  if [ "$code" -eq 0 ]; then STATUS=success; fi
  if [ -z "$AWS" ]; then locate_aws; fi
  # The report needs a file even when the work directory was never made.
  if [ -z "$WORK" ] || [ ! -d "$WORK" ]; then
    WORK=$(mktemp -d 2>/dev/null) || WORK=""
  fi
  local report
  report=$(status_json "$code")
  printf '%s\n' "$report" >&2
  if [ -n "$AWS" ] && [ -n "$WORK" ] && printf '%s\n' "$report" > "$WORK/status.json"; then
    upload "$STATUS_UPLOAD_TIMEOUT" "$WORK/status.json" "$STATUS_REQUEST" || echo "transcode: could not upload status.json" >&2
  else
    echo "transcode: status.json not uploaded (aws CLI: ${AWS:-not found}, work directory: ${WORK:-none})" >&2
  fi
  if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
  if ! stop_instance now; then
    echo "transcode: shutdown failed; forcing a power-off" >&2
    force_poweroff
  fi
  exit "$code"
}

fail() { # exit code, message
  ERROR=$2
  echo "transcode: $2" >&2
  exit "$1"
}

trap finish EXIT

# The dead-man switch, armed first: whatever the script does from here on
# (hangs, dies, is killed), the instance stops at MAX_RUNTIME plus a margin.
# The scheduled shutdown belongs to logind, not to this process tree.
stop_instance "+$DEAD_MAN_MINUTES" || fail 70 "could not schedule the dead-man shutdown in $DEAD_MAN_MINUTES minutes"

locate_aws
WORK_ROOT=${TRANSCODE_WORK_ROOT:-/var/tmp}
WORK=$(mktemp -d "$WORK_ROOT/transcode.XXXXXX") || fail 73 "could not create a work directory under $WORK_ROOT"
decode SOURCE_JSON "$ENCODED_SOURCE_JSON"
decode SOURCE_URI "$ENCODED_SOURCE_URI"

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

# One word that starts with s3://, which no parameter-file prefix matches;
# `aws s3 cp` splits bucket and key at the first slash and reads nothing
# into the key. (`s3api get-object` has no --cli-input-json in CLI v1.)
DOWNLOAD_EXIT=0
bounded "$DOWNLOAD_TIMEOUT" "$AWS" s3 cp --region "$REGION" --only-show-errors "$SOURCE_URI" "$WORK/input" \
  || DOWNLOAD_EXIT=$?
if [ "$DOWNLOAD_EXIT" -eq 124 ] || [ "$DOWNLOAD_EXIT" -eq 137 ]; then
  fail 3 "download of the source object took longer than $DOWNLOAD_TIMEOUT s"
elif [ "$DOWNLOAD_EXIT" -ne 0 ]; then
  fail 3 "download of the source object failed"
fi

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
# One budget for all the outputs: each upload gets what is left of it.
UPLOADS_END=$((SECONDS + UPLOADS_TIMEOUT))
for i in "${!OUTPUTS[@]}"; do
  output=${OUTPUTS[$i]}
  [ -s "$output" ] || fail 2 "ffmpeg produced no $output"
  # (`timeout 0` would mean no limit.)
  left=$((UPLOADS_END - SECONDS))
  [ "$left" -gt 0 ] && upload "$left" "$output" "${OUTPUT_REQUESTS[$i]}" \
    || fail 3 "upload of $output failed or ran past the uploads' $UPLOADS_TIMEOUT s"
  UPLOADED="$UPLOADED${UPLOADED:+,}${OUTPUT_KEYS_JSON[$i]}"
done
