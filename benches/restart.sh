#!/usr/bin/env bash
# What clients see while the proxy's control side is restarted or upgraded: berth's
# server stopped (SIGTERM) and started again, replaced by another copy of the binary,
# killed (SIGKILL) and started again, and its data plane upgraded in place (`berth
# dataplane upgrade`: the listening sockets handed to a new process), against `nginx -s reload` and HAProxy's seamless
# reload (`-x` with `expose-fd listeners`, `-sf`). Each runs under continuous keep-alive
# load (benches/restart_load.py); prints one markdown table per proxy: requests and
# failed requests in each switch's window (the switch plus one second), the longest gap a
# client saw between two answers, and the p99 latency of requests started in the window.
#
# berth runs the debug build (target/debug/berth, or $BERTH): good for counting failures
# and gaps, not for latency against the peers (which run their release builds).
#
# Knobs (environment): CONCURRENCY (8), BASE_PORT (18090; uses the next 5 ports too),
# KEEP_TMP=1.
set -euo pipefail
BENCH_NAME=berth-restart
PROXY_CORE=0
LOAD_CORE=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "$*" >&2; }
# shellcheck source=benches/common.sh
source "$ROOT/benches/common.sh"

BERTH=${BERTH:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/berth}
WHOAMI=$(dirname "$BERTH")/berth-whoami
CONCURRENCY=${CONCURRENCY:-8}
BASE_PORT=${BASE_PORT:-18090}
LOAD="$ROOT/benches/restart_load.py"
[[ -x $BERTH && -x $WHOAMI ]] || { log "build first: cargo build -p berth -p berth-whoami"; exit 1; }
for tool in nginx haproxy curl python3; do
    command -v "$tool" >/dev/null || { log "missing: $tool"; exit 1; }
done

# mark NAME START: appends a switch window ending now to $MARKS.
mark() { echo "$1 $2 $(date +%s.%N)" >>"$MARKS"; }
now() { date +%s.%N; }

wait_ok() {
    local url=$1 i
    for ((i = 0; i < 600; i++)); do
        curl -fsS --max-time 2 "$url" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# --- berth -----------------------------------------------------------------------
DATA="$TMP/berth"
mkdir -p "$DATA" "$TMP/upgrade"
awk -v port="$BASE_PORT" '/^      - port: 8080$/ && !done { print "      - port: " port; done=1; next } { print }' \
    "$ROOT/configs/quickstart.yaml" >"$TMP/stack.yaml"
grep -q "port: $BASE_PORT" "$TMP/stack.yaml" || { log "the quickstart changed; update restart.sh"; exit 1; }
SERVER_PID=
start_server() {
    local program=$1
    rm -f "$DATA/api.addr"
    BERTH_DATA_DIR=$DATA "$program" server --api-addr 127.0.0.1:0 --listen-ip 127.0.0.1 \
        --runtime process --dns-listen 127.0.0.1:0 --mesh-inbound-addr 127.0.0.1:0 \
        --insecure-loopback "${@:2}" >>"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    local i
    for ((i = 0; i < 600; i++)); do
        [[ -s $DATA/api.addr ]] && return 0
        sleep 0.05
    done
    log "berth server did not start; $TMP/server.log:"
    tail -20 "$TMP/server.log" >&2
    exit 1
}
# Takes the quickstart down, stops the server (which then stops its data plane), and
# kills whatever of its data dir is left.
stop_berth() {
    BERTH_DATA_DIR=$DATA "$BERTH" --endpoint "$(cat "$DATA/api.addr")" down >/dev/null 2>&1 || true
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    local p
    for p in /proc/[0-9]*; do
        if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "BERTH_DATA_DIR=$DATA"; then
            kill -KILL "${p#/proc/}" 2>/dev/null || true
        fi
    done
}
log "berth: starting the quickstart on 127.0.0.1:$BASE_PORT"
start_server "$BERTH" --apply "$TMP/stack.yaml"
wait_ok "http://127.0.0.1:$BASE_PORT/" || { log "the quickstart does not answer"; exit 1; }
# Three healthy targets: three distinct tasks answer.
for ((i = 0; i < 300; i++)); do
    n=$(for _ in 1 2 3 4 5 6; do curl -fsS -D - -o /dev/null "http://127.0.0.1:$BASE_PORT/" 2>/dev/null | grep -i '^x-berth-task'; done | sort -u | wc -l)
    [[ $n -ge 3 ]] && break
    sleep 0.2
done
cp "$BERTH" "$TMP/upgrade/berth"
ln -sf "$WHOAMI" "$TMP/upgrade/berth-whoami"
MARKS="$TMP/berth.marks"
: >"$MARKS"
python3 "$LOAD" "http://127.0.0.1:$BASE_PORT/" 20 "$CONCURRENCY" "$MARKS" >"$TMP/berth.table" &
LOAD_PID=$!
sleep 3
t=$(now); kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; start_server "$BERTH"; mark "berth:SIGTERM+start" "$t"
sleep 4
t=$(now); kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; start_server "$TMP/upgrade/berth"; mark "berth:new-binary" "$t"
sleep 4
t=$(now); kill -KILL "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; start_server "$BERTH"; mark "berth:SIGKILL+start" "$t"
sleep 4
# The data plane itself replaced: a new process takes its listening sockets over.
t=$(now); BERTH_DATA_DIR=$DATA "$BERTH" dataplane upgrade >>"$TMP/server.log" 2>&1; mark "berth:dataplane-upgrade" "$t"
wait "$LOAD_PID"
stop_berth

# --- backends for nginx and HAProxy ------------------------------------------------
for i in 1 2 3; do
    "$WHOAMI" --listen "127.0.0.1:$((BASE_PORT + 2 + i))" >/dev/null 2>&1 &
    PIDS+=("$!")
done
for i in 1 2 3; do wait_ok "http://127.0.0.1:$((BASE_PORT + 2 + i))/health"; done
UPSTREAMS=$(for i in 1 2 3; do echo "server 127.0.0.1:$((BASE_PORT + 2 + i));"; done)

# --- nginx -------------------------------------------------------------------------
mkdir -p "$TMP/nginx"
{
    nginx_preamble
    cat <<EOF
    upstream whoami {
        $UPSTREAMS
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$((BASE_PORT + 1));
        location / {
            proxy_pass http://whoami;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"
nginx -c "$TMP/nginx/nginx.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_ok "http://127.0.0.1:$((BASE_PORT + 1))/" || { log "nginx does not answer"; exit 1; }
MARKS="$TMP/nginx.marks"
: >"$MARKS"
python3 "$LOAD" "http://127.0.0.1:$((BASE_PORT + 1))/" 10 "$CONCURRENCY" "$MARKS" >"$TMP/nginx.table" &
LOAD_PID=$!
sleep 3
t=$(now); nginx -c "$TMP/nginx/nginx.conf" -s reload; mark "nginx:-s-reload" "$t"
sleep 4
t=$(now); nginx -c "$TMP/nginx/nginx.conf" -s reload; mark "nginx:-s-reload" "$t"
wait "$LOAD_PID"
kill "$NGINX_PID" 2>/dev/null || true

# --- HAProxy -----------------------------------------------------------------------
cat >"$TMP/haproxy.cfg" <<EOF
global
    stats socket $TMP/haproxy.sock mode 600 level admin expose-fd listeners
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
frontend web
    bind 127.0.0.1:$((BASE_PORT + 2))
    default_backend whoami
backend whoami
    balance roundrobin
$(for i in 1 2 3; do echo "    server w$i 127.0.0.1:$((BASE_PORT + 2 + i))"; done)
EOF
haproxy -f "$TMP/haproxy.cfg" -p "$TMP/haproxy.pid" -D
wait_ok "http://127.0.0.1:$((BASE_PORT + 2))/" || { log "HAProxy does not answer"; exit 1; }
MARKS="$TMP/haproxy.marks"
: >"$MARKS"
python3 "$LOAD" "http://127.0.0.1:$((BASE_PORT + 2))/" 10 "$CONCURRENCY" "$MARKS" >"$TMP/haproxy.table" &
LOAD_PID=$!
sleep 3
for round in 1 2; do
    t=$(now)
    haproxy -f "$TMP/haproxy.cfg" -p "$TMP/haproxy.pid" -D -x "$TMP/haproxy.sock" -sf $(cat "$TMP/haproxy.pid")
    mark "haproxy:-x+-sf" "$t"
    sleep 4
done
wait "$LOAD_PID"
kill $(cat "$TMP/haproxy.pid") 2>/dev/null || true

echo "### berth (debug build), concurrency $CONCURRENCY"
cat "$TMP/berth.table"
echo
echo "### nginx"
cat "$TMP/nginx.table"
echo
echo "### HAProxy"
cat "$TMP/haproxy.table"
