#!/bin/sh
# A small log generator for the compose demo: five lines a second into two files that the
# Fluent Bit agent tails —
#   app.log           JSON lines like a Go service's (level, msg, method, path, status, duration_ms, bytes)
#   nginx-access.log  NGINX's `combined` access log format
# Values cycle through fixed lists, so the output is varied but needs no randomness (busybox sh).
set -eu
dir=${LOGGEN_DIR:-/var/log/loggen}
interval=${LOGGEN_INTERVAL:-0.2}
count=${LOGGEN_COUNT:-0}            # 0: forever
mkdir -p "$dir"
i=0
while [ "$count" -eq 0 ] || [ "$i" -lt "$count" ]; do
  i=$((i + 1))
  case $((i % 5)) in
    0) method=POST path=/api/v1/orders ;;
    1) method=GET path=/api/v1/items/$((i % 97)) ;;
    2) method=GET path=/healthz ;;
    3) method=PUT path=/api/v1/items/$((i % 31)) ;;
    *) method=DELETE path=/api/v1/sessions/$((i % 13)) ;;
  esac
  status=200 level=info msg="request completed"
  [ $((i % 23)) -eq 0 ] && status=404 level=warn msg="not found"
  [ $((i % 41)) -eq 0 ] && status=500 level=error msg="upstream timed out"
  ms=$((i * 7 % 250)).$((i % 10))
  bytes=$((i * 131 % 20000))
  echo "{\"time\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"level\":\"$level\",\"msg\":\"$msg\",\"method\":\"$method\",\"path\":\"$path\",\"status\":$status,\"duration_ms\":$ms,\"bytes\":$bytes}" >>"$dir/app.log"
  echo "10.0.$((i % 4)).$((i % 250 + 1)) - - [$(date -u '+%d/%b/%Y:%H:%M:%S +0000')] \"$method $path HTTP/1.1\" $status $bytes \"-\" \"curl/8.5.0\"" >>"$dir/nginx-access.log"
  # Keep a laptop's disk: start the files again past 10 MB (Fluent Bit's tail follows a truncation).
  for f in "$dir/app.log" "$dir/nginx-access.log"; do
    [ "$(wc -c <"$f")" -lt 10000000 ] || : >"$f"
  done
  sleep "$interval"
done
