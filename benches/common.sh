# Shared by benches/run.sh and benches/mesh.sh (sourced, not run): the working
# directory and its cleanup, the core pinning commands, the waits for a process's
# "ready" line and for a proxy to forward to the backend, and the start of both nginx
# configurations. Expects PROXY_CORE and LOAD_CORE to be set; sets TMP and PIDS.

TMP=$(mktemp -d -t "${BENCH_NAME:-berth-bench}.XXXXXX")
chmod 755 "$TMP" # nginx's worker may run as another user
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        log "working directory kept: $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Commands, not shell functions, so that `$!` of a background job is the process itself
# (taskset execs the program in place).
ON_PROXY_CORE=(taskset -c "$PROXY_CORE")
ON_LOAD_CORE=(taskset -c "$LOAD_CORE")

# wait_ready_line FILE PID: waits for a line starting with "ready" in FILE while PID lives.
wait_ready_line() {
    local file=$1 pid=$2 i
    for ((i = 0; i < 600; i++)); do
        grep -q '^ready' "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# wait_http URL [curl options]: waits until URL answers with the backend's body.
wait_http() {
    local url=$1 i
    shift
    for ((i = 0; i < 300; i++)); do
        if curl -fsS --max-time 2 "$@" "$url" 2>/dev/null | grep -q berth-bench-backend; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# nginx_preamble: what both nginx configurations start with (one worker, no access log,
# temp files under $TMP/nginx, long keep-alive to clients); the http block is left open
# for the caller's upstreams and servers.
nginx_preamble() {
    cat <<EOF
daemon off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
EOF
}
