# Sourced by benches/workloads.sh, not run: starting berth-bench-proxy, nginx and HAProxy
# for one workload, each configured to do the same work per request (keep-alive to the
# client, pooled keep-alive connections to the backend, X-Forwarded-For / -Proto / -Port,
# no access log), and stopping them again. It writes configurations into $TMP and records
# each started proxy in PID_OF[run]; it measures nothing.
#
# Expects: BIN, TMP, BACKEND_PORT, NOFILE, IDLE_KEEPALIVE, ON_PROXY_CORE (common.sh), PIDS,
# PID_OF, die.

# pin_prefix PIN: the command prefix that pins to the proxy core when PIN is 1.
pin_prefix() {
    if (($1)); then
        printf '%s\n' "${ON_PROXY_CORE[@]}"
    fi
}

# wait_port PORT PID: waits until something accepts on 127.0.0.1:PORT while PID lives.
wait_port() {
    local port=$1 pid=$2 i
    for ((i = 0; i < 300; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# berth_start RUN PORT PIN ARGS...: berth-bench-proxy on 127.0.0.1:PORT forwarding to the
# backend (ARGS: --threads, --rules, --targets, --tls ...); returns once it is ready.
berth_start() {
    local run=$1 port=$2 pin=$3 prefix pid
    shift 3
    mapfile -t prefix < <(pin_prefix "$pin")
    "${prefix[@]}" "$BIN/berth-bench-proxy" --listen "$port" \
        --backend "127.0.0.1:$BACKEND_PORT" "$@" >"$TMP/$run.out" 2>"$TMP/$run.err" &
    pid=$!
    PIDS+=("$pid")
    wait_ready_line "$TMP/$run.out" "$pid" ||
        die "$run did not become ready: $(tail -c 600 "$TMP/$run.err")"
    PID_OF[$run]=$pid
}

# nginx_proxy_include FILE: the per-location proxying every nginx server block includes
# (its http block must map $http_upgrade to $connection_upgrade).
nginx_proxy_include() {
    cat >"$1" <<EOF
proxy_http_version 1.1;
# Connection "" (keep-alive upstream) unless the client asks for an upgrade (WebSocket).
proxy_set_header Upgrade \$http_upgrade;
proxy_set_header Connection \$connection_upgrade;
proxy_set_header Host \$http_host;
proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto \$scheme;
proxy_set_header X-Forwarded-Port \$server_port;
# Bodies stream both ways, as through berth and HAProxy: no request buffering, no
# response spooling to temporary files, no body size limit.
client_max_body_size 0;
client_body_buffer_size 64k;
proxy_request_buffering off;
proxy_max_temp_file_size 0;
EOF
}

# nginx_upstream NAME ADDR...: an upstream block with pooled keep-alive connections.
nginx_upstream() {
    local name=$1 addr
    shift
    echo "    upstream $name {"
    for addr in "$@"; do
        echo "        server $addr;"
    done
    cat <<EOF
        keepalive 1024;
        keepalive_requests 10000000;
        keepalive_timeout 60s;
    }
EOF
}

# nginx_start RUN WORKERS PIN PORT BODY: nginx with WORKERS workers whose http block holds
# BODY (upstreams and servers); waits until PORT accepts.
nginx_start() {
    local run=$1 workers=$2 pin=$3 port=$4 body=$5 dir=$TMP/nginx-$1 prefix pid
    mkdir -p "$dir"/{body,proxy,fastcgi,uwsgi,scgi}
    chmod -R 777 "$dir"
    {
        nginx_preamble | sed -e "s#$TMP/nginx/#$dir/#g" \
            -e "s/^worker_processes 1;/worker_processes $workers;\nworker_rlimit_nofile $NOFILE;/" \
            -e "s/worker_connections 4096;/worker_connections $((NOFILE - 100));/"
        printf '%s\n}\n' "$body"
    } >"$dir/nginx.conf"
    mapfile -t prefix < <(pin_prefix "$pin")
    "${prefix[@]}" nginx -p "$dir" -c "$dir/nginx.conf" >"$TMP/$run.out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" "$pid" ||
        die "$run did not start: $(cat "$TMP/$run.out" "$dir/error.log" 2>/dev/null | tail -5)"
    PID_OF[$run]=$pid
}

# haproxy_start RUN THREADS PIN PORT FRONTEND BACKEND: HAProxy with nbthread THREADS, the
# given frontend lines (binds, rules) and backend lines (servers); waits until PORT accepts.
haproxy_start() {
    local run=$1 threads=$2 pin=$3 port=$4 frontend=$5 backend=$6 prefix pid maxconn
    # HAProxy reserves a second descriptor per connection (for its server side), so the
    # idle group's clients may need a maxconn above half the open-file limit: idle
    # keep-alive clients hold no server connection, and "no strict-limits" lets it start.
    maxconn=$((NOFILE / 2 - 100))
    ((maxconn < ${IDLE_KEEPALIVE:-0} + 1000)) && maxconn=$((IDLE_KEEPALIVE + 1000))
    cat >"$TMP/$run.cfg" <<EOF
global
    nbthread $threads
    maxconn $maxconn
    no strict-limits
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    option http-keep-alive
    option forwardfor
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 60s
    timeout http-keep-alive 60s

frontend bench
$frontend
    http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]
    http-request set-header X-Forwarded-Port %[dst_port]
    default_backend backend

backend backend
$backend
EOF
    mapfile -t prefix < <(pin_prefix "$pin")
    "${prefix[@]}" haproxy -f "$TMP/$run.cfg" -db >"$TMP/$run.out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" "$pid" || die "$run did not start: $(tail -5 "$TMP/$run.out")"
    PID_OF[$run]=$pid
}

# stop_runs RUN...: stops the proxies of the given runs and waits for them to exit.
stop_runs() {
    local run pid
    for run in "$@"; do
        pid=${PID_OF[$run]:-}
        [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
    done
    for run in "$@"; do
        pid=${PID_OF[$run]:-}
        [[ -n $pid ]] && { wait "$pid" 2>/dev/null || true; }
        unset "PID_OF[$run]"
    done
}

# loopback_targets N: N backend addresses as berth-bench-proxy --targets N makes them
# (127.0.0.1 first, then 127.0.x.y, y in 1..254), one per line.
loopback_targets() {
    awk -v n="$1" -v port="$BACKEND_PORT" 'BEGIN {
        print "127.0.0.1:" port; made = 1
        for (i = 0; made < n; i++) {
            a = int(i / 254); b = i % 254 + 1
            if (a == 0 && b == 1) continue
            print "127.0." a "." b ":" port; made++
        }
    }'
}
