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

# ---- measurement helpers (run.sh, mesh.sh, workloads.sh) ------------------------------

# proc_tree PID: the pid and its children (nginx's master and workers).
proc_tree() {
    local pid=$1
    echo "$pid"
    pgrep -P "$pid" 2>/dev/null || true
}

# stat_ticks AWK_EXPR PID...: a sum of /proc/PID/stat fields over the given pids, the
# fields numbered after "pid (comm) " (utime is $12, stime $13).
stat_ticks() {
    local expr=$1 total=0 pid t
    shift
    for pid in "$@"; do
        t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk "{print $expr}")
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# cpu_ticks PID...: CPU ticks (utime + stime) summed over the given pids.
cpu_ticks() { stat_ticks '$12 + $13' "$@"; }

# sys_ticks PID...: the kernel part of cpu_ticks (stime).
sys_ticks() { stat_ticks '$13' "$@"; }

# rss_kib PID...: resident set size in KiB summed over the given pids.
rss_kib() {
    local total=0 pid r
    for pid in "$@"; do
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
        total=$((total + ${r:-0}))
    done
    echo "$total"
}

# to_us VALUE: a wrk latency such as 585.00us, 1.20ms or 1.02s, in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000
        else if (u == "m") m = 60000000; else m = 1
        printf "%.1f", n * m
    }'
}

# median_of FILE COLUMN: the median of one column of FILE ("-" when empty or "-").
median_of() {
    awk -v c="$2" '{print $c}' "$1" 2>/dev/null | sort -g | awk '
        {a[NR] = $1}
        END {
            if (NR == 0 || a[1] == "-") { print "-"; exit }
            if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2
        }'
}

# range_of FILE COLUMN FORMAT: " (min–max)" of one column printed with FORMAT ("" for one
# value or "-").
range_of() {
    awk -v c="$2" '{print $c}' "$1" 2>/dev/null | sort -g | awk -v f="$3" '
        NR == 1 {lo = $1} {hi = $1}
        END {if (lo == "-" || NR < 2) print ""; else printf " (" f "–" f ")", lo, hi}'
}
