#!/usr/bin/env bash
# Instructions per `GET /me` request, counted by callgrind: they do not swing with the
# machine's load the way requests per second do. Each server of keygate-bench
# runs under `valgrind --tool=callgrind` on a private redis-server; after a warm-up the
# counters are zeroed, REQUESTS requests are sent on one keep-alive connection, the
# counters are dumped, and the total is divided by REQUESTS. Background work during the
# window (the near cache's tracking check, refreshes) is counted in.
#
# usage: bench/callgrind.sh [BINARY] [REQUESTS] [SERVERS...]
#   BINARY    default target/release/keygate-bench (build it with
#             `cargo build --release -p keygate-bench`)
#   REQUESTS  default 2000
#   SERVERS   framework:variant pairs; default: keygate on the four frameworks, the
#             hand-written GETEX route on axum, and the near cache's hit (axum:keygate-near)
#             and miss (axum:keygate-near-small, REQUESTS sessions round-robin through a
#             cache of 1,000) paths
set -euo pipefail

BIN=${1:-target/release/keygate-bench}
REQUESTS=${2:-2000}
shift $(( $# < 2 ? $# : 2 ))
SERVERS=("$@")
if [ ${#SERVERS[@]} -eq 0 ]; then
  SERVERS=(axum:getex axum:keygate actix:keygate poem:keygate rocket:keygate
           axum:keygate-near axum:keygate-near-small)
fi
for tool in valgrind callgrind_control curl redis-server redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool is not installed" >&2; exit 1; }
done

WORK=$(mktemp -d)
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --logfile "$WORK/redis.log" --daemonize no &
REDIS_PID=$!
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  kill "$REDIS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
USER_JSON='{"user_id":598,"mobile_phone":"","openid":"oGrf0v4ov5ETTCNtW_A-Zq61kgsI"}'

# REQUESTS sessions of the Node layout under a prefix, for the miss path.
plant() {
  python3 - "$1" "$REQUESTS" "$USER_JSON" > "$WORK/tokens" <<'PY'
import secrets, sys
for _ in range(int(sys.argv[2])):
    print(secrets.token_hex(16))
PY
  while read -r token; do
    printf "SET %s_%s '%s' EX 1800\n" "$1" "$token" "$USER_JSON"
  done < "$WORK/tokens" | redis-cli -p "$REDIS_PORT" > /dev/null
}

# Sends REQUESTS `GET /me` on one keep-alive connection, cycling through the tokens.
requests() {
  python3 - "$1" "$REQUESTS" "$2" <<'PY'
import http.client, sys
port, n, tokens = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3]).read().split()
conn = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    conn.request("GET", "/me", headers={"authorization": tokens[i % len(tokens)]})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"GET /me answered {response.status}")
PY
}

printf '| server | instructions per request |\n| --- | ---: |\n'
for server in "${SERVERS[@]}"; do
  framework=${server%%:*}
  variant=${server#*:}
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  out="$WORK/callgrind.$framework.$variant"
  KEYGATE_BENCH_WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$out.%p" \
    "$BIN" serve "$framework" "$variant" "$port" "$REDIS_URL" 2> "$WORK/valgrind.log" &
  SERVER_PID=$!
  for _ in $(seq 600); do
    curl -s -o /dev/null "http://127.0.0.1:$port/me" && break
    sleep 0.1
  done
  token=$(curl -s -X POST "http://127.0.0.1:$port/login" | tr -d '"[:space:]')
  if [ "$variant" = keygate-near-small ]; then
    plant nearsmall
  else
    echo "$token" > "$WORK/tokens"
  fi
  requests "$port" "$WORK/tokens"   # warm-up: fills, first refreshes
  callgrind_control -z "$SERVER_PID" > /dev/null 2>&1
  requests "$port" "$WORK/tokens"
  callgrind_control -d "$SERVER_PID" > /dev/null 2>&1
  sleep 1
  total=$(cat "$out".* 2>/dev/null | awk '/^summary:/ { s += $2 } /^totals:/ { t += $2 } END { print (t > 0 ? t : s) }')
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  if [ -n "${KEEP_DIR:-}" ]; then mkdir -p "$KEEP_DIR"; cat "$out".* > "$KEEP_DIR/$framework.$variant.out"; fi
  rm -f "$out".*
  printf '| %s %s | %s |\n' "$framework" "$variant" "$(( total / REQUESTS ))"
done
