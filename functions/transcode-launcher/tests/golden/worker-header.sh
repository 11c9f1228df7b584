#!/bin/bash
# transcode-launcher worker for job tj-0123abcd: transcode one S3 object, upload the
# outputs and status.json, then shut down (which terminates the instance).
set -euo pipefail
decode() { # variable, base64 text
  local v
  v=$(printf '%s' "$2" | base64 -d && printf x) || fail 65 "could not decode $1 from the user data"
  printf -v "$1" '%s' "${v%x}"
}
# Settings are plain literals: reporting and shutting down need no decoding.
JOB_ID='tj-0123abcd'
REGION='eu-west-1'
FFMPEG_PATH='/opt/ff'\''mpeg/bin/ffmpeg'
AWS_CLI_PATH='/usr/local/bin/aws'
PROGRAM_SEARCH_DIRS='/usr/local/bin:/usr/bin'
MAX_RUNTIME=1800
DEAD_MAN_MINUTES=45
DOWNLOAD_TIMEOUT=300
UPLOADS_TIMEOUT=300
STATUS_UPLOAD_TIMEOUT=60
KILL_GRACE=30
STATUS_REQUEST='{"Bucket":"outputs","Key":"transcoded/tj-0123abcd/status.json"}'
OUTPUTS=('video-1080p.mp4' 'video-720p.mp4' 'video-480p.mp4' 'thumbnail.jpg')
OUTPUT_REQUESTS=('{"Bucket":"outputs","Key":"transcoded/tj-0123abcd/video-1080p.mp4"}' '{"Bucket":"outputs","Key":"transcoded/tj-0123abcd/video-720p.mp4"}' '{"Bucket":"outputs","Key":"transcoded/tj-0123abcd/video-480p.mp4"}' '{"Bucket":"outputs","Key":"transcoded/tj-0123abcd/thumbnail.jpg"}')
OUTPUT_KEYS_JSON=('"transcoded/tj-0123abcd/video-1080p.mp4"' '"transcoded/tj-0123abcd/video-720p.mp4"' '"transcoded/tj-0123abcd/video-480p.mp4"' '"transcoded/tj-0123abcd/thumbnail.jpg"')
FFMPEG_ARGS=('-map' '0:v:0' '-map' '0:a:0?' '-vf' 'scale=-2:1080' '-c:v' 'libx264' '-preset' 'veryfast' '-crf' '23' '-pix_fmt' 'yuv420p' '-c:a' 'aac' '-b:a' '128k' '-movflags' '+faststart' 'video-1080p.mp4' '-map' '0:v:0' '-map' '0:a:0?' '-vf' 'scale=-2:720' '-c:v' 'libx264' '-preset' 'veryfast' '-crf' '23' '-pix_fmt' 'yuv420p' '-c:a' 'aac' '-b:a' '128k' '-movflags' '+faststart' 'video-720p.mp4' '-map' '0:v:0' '-map' '0:a:0?' '-vf' 'scale=-2:480' '-c:v' 'libx264' '-preset' 'veryfast' '-crf' '23' '-pix_fmt' 'yuv420p' '-c:a' 'aac' '-b:a' '128k' '-movflags' '+faststart' 'video-480p.mp4' '-map' '0:v:0' '-vf' 'thumbnail,scale=-2:360' '-frames:v' '1' '-q:v' '3' 'thumbnail.jpg')
# From the event: base64, decoded at run time.
ENCODED_SOURCE_URI='czM6Ly91cGxvYWRzL3ZpZGVvcy8kKGlkKSciYHhgCuWLleeUuyBmaWxlOi8vYS5tcDQ='
ENCODED_SOURCE_JSON='eyJidWNrZXQiOiJ1cGxvYWRzIiwiZVRhZyI6IjAxMjM0NTY3ODlhYmNkZWYiLCJrZXkiOiJ2aWRlb3MvJChpZCknXCJgeGBcbuWLleeUuyBmaWxlOi8vYS5tcDQiLCJ2ZXJzaW9uSWQiOiJ2JzEifQ=='
