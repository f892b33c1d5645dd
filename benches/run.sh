#!/usr/bin/env bash
# berth load balancer: peer comparison against nginx and HAProxy.
#
# One machine, one backend (berth-bench-backend), one load generator (wrk, HTTP/1.1
# keep-alive). Every proxy is pinned to one core and runs single-threaded (berth with one
# worker thread, nginx with one worker, HAProxy with nbthread 1); the backend and wrk share
# the other core. Runs are interleaved and repeated; the table shows medians.
#
# Each proxy does the same work per request: keep-alive to the client, a pooled keep-alive
# connection to the backend, and X-Forwarded-For / -Proto / -Port added (as an ALB does).
# Access logs are off everywhere.
#
# Usage:
#   benches/run.sh                 # full: 3 rounds x 10 s per configuration
#   QUICK=1 benches/run.sh         # quick: 1 round x 3 s
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10] seconds per measured run  WARMUP [2] seconds before each run
#   CONNECTIONS [50]  PROXY_CORE [0]  LOAD_CORE [1]  BASE_PORT [18080]  RULES_MANY [100]
#   KEEP_TMP=1 keeps the working directory (configs, wrk outputs, proxy logs).
#   BASELINE=/path/to/berth-bench-proxy adds a "berth (baseline)" row served by that binary
#   (an earlier build, say), interleaved with the others, to compare two builds in one run.
#
# Needs: wrk, nginx, haproxy, taskset, curl, cargo (openssl for the HTTPS rows). On
# Debian/Ubuntu: apt-get install -y wrk nginx-light haproxy util-linux curl openssl

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ "${QUICK:-0}" == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-3}
    WARMUP=${WARMUP:-1}
else
    ROUNDS=${ROUNDS:-3}
    DURATION=${DURATION:-10}
    WARMUP=${WARMUP:-2}
fi
CONNECTIONS=${CONNECTIONS:-50}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
BASE_PORT=${BASE_PORT:-18080}
RULES_MANY=${RULES_MANY:-100}

BACKEND_PORT=$BASE_PORT
BERTH_PORT=$((BASE_PORT + 1))
BERTH_1_PORT=$((BASE_PORT + 2))
BERTH_MANY_PORT=$((BASE_PORT + 3))
NGINX_PORT=$((BASE_PORT + 4))
HAPROXY_PORT=$((BASE_PORT + 5))
BERTH_TLS_PORT=$((BASE_PORT + 6))
NGINX_TLS_PORT=$((BASE_PORT + 7))
BASELINE_PORT=$((BASE_PORT + 8))

log() { printf '%s\n' "$*" >&2; }
die() { log "run.sh: $*"; exit 1; }

# ---- prerequisites -------------------------------------------------------------------

missing=()
for tool in wrk nginx haproxy taskset curl cargo awk; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "run.sh: missing: ${missing[*]}"
    log "On Debian/Ubuntu: apt-get install -y wrk nginx-light haproxy util-linux curl"
    exit 1
fi
ncpu=$(getconf _NPROCESSORS_ONLN)
((ncpu >= 2)) || die "needs at least 2 cores (proxy on one, backend and wrk on the other); found $ncpu"
CLK_TCK=$(getconf CLK_TCK)

# ---- build -----------------------------------------------------------------------------

log "building berth-bench-proxy and berth-bench-backend (release)..."
(cd "$ROOT" && cargo build --release --quiet -p berth-benches --bins) || die "cargo build failed"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
[[ -x $BIN/berth-bench-proxy && -x $BIN/berth-bench-backend ]] || die "binaries not found in $BIN"

# ---- working directory and cleanup ---------------------------------------------------

source "$ROOT/benches/common.sh"

# ---- backend -----------------------------------------------------------------------------

"${ON_LOAD_CORE[@]}" "$BIN/berth-bench-backend" --listen "127.0.0.1:$BACKEND_PORT" >"$TMP/backend.out" 2>&1 &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
wait_ready_line "$TMP/backend.out" "$BACKEND_PID" || die "backend did not start: $(cat "$TMP/backend.out")"

# ---- TLS material (only used when berth serves HTTPS) -------------------------------

HTTPS=0
HTTPS_NOTE=""
if command -v openssl >/dev/null 2>&1; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 ||
        HTTPS_NOTE="HTTPS rows left out: openssl could not make a test certificate."
    chmod 644 "$TMP/key.pem" "$TMP/cert.pem" 2>/dev/null || true
else
    HTTPS_NOTE="HTTPS rows left out: openssl is not installed."
fi

# ---- berth -------------------------------------------------------------------------------

# start_berth NAME PORT ARGS...: starts one berth-bench-proxy on the proxy core; sets
# STARTED_PID. Returns 69 when berth-proxy does not serve the listener's protocol.
start_berth() {
    local name=$1 port=$2
    shift 2
    "${ON_PROXY_CORE[@]}" "${PROXY_BIN:-$BIN/berth-bench-proxy}" --listen "$port" \
        --backend "127.0.0.1:$BACKEND_PORT" --threads 1 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    STARTED_PID=$!
    if ! wait_ready_line "$TMP/$name.out" "$STARTED_PID"; then
        local rc=0
        kill "$STARTED_PID" 2>/dev/null || true # still starting after a minute
        wait "$STARTED_PID" 2>/dev/null || rc=$?
        if ((rc == 69)); then
            return 69
        fi
        die "$name did not become ready (exit $rc): $(cat "$TMP/$name.err")"
    fi
    PIDS+=("$STARTED_PID")
}

declare -A PID_OF URL_OF
start_berth berth "$BERTH_PORT"
PID_OF[berth]=$STARTED_PID
start_berth berth-1 "$BERTH_1_PORT" --rules 1
PID_OF[berth-1]=$STARTED_PID
start_berth berth-many "$BERTH_MANY_PORT" --rules "$RULES_MANY"
PID_OF[berth-many]=$STARTED_PID
if [[ -n ${BASELINE:-} ]]; then
    [[ -x $BASELINE ]] || die "BASELINE=$BASELINE is not an executable"
    PROXY_BIN=$BASELINE start_berth berth-baseline "$BASELINE_PORT"
    PID_OF[berth-baseline]=$STARTED_PID
fi
if [[ -z $HTTPS_NOTE ]]; then
    rc=0
    start_berth berth-tls "$BERTH_TLS_PORT" --tls "$TMP/cert.pem" "$TMP/key.pem" || rc=$?
    if ((rc == 0)); then
        HTTPS=1
        PID_OF[berth-tls]=$STARTED_PID
    elif ((rc == 69)); then
        HTTPS_NOTE="HTTPS termination left out: berth-proxy does not serve HTTPS listeners yet."
    else
        die "berth HTTPS listener failed to start"
    fi
fi

# ---- nginx -------------------------------------------------------------------------------

mkdir -p "$TMP/nginx"/{body,proxy,fastcgi,uwsgi,scgi}
chmod -R 777 "$TMP/nginx"
nginx_tls_server=""
if ((HTTPS)); then
    nginx_tls_server="
    server {
        listen 127.0.0.1:$NGINX_TLS_PORT ssl;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { include $TMP/nginx/proxy.inc; }
    }"
fi
cat >"$TMP/nginx/proxy.inc" <<EOF
proxy_pass http://backend;
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host \$http_host;
proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto \$scheme;
proxy_set_header X-Forwarded-Port \$server_port;
EOF
{
    nginx_preamble
    cat <<EOF
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 10000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { include $TMP/nginx/proxy.inc; }
    }$nginx_tls_server
}
EOF
} >"$TMP/nginx/nginx.conf"
"${ON_PROXY_CORE[@]}" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx.out" 2>&1 &
PID_OF[nginx]=$!
PIDS+=("${PID_OF[nginx]}")
wait_http "http://127.0.0.1:$NGINX_PORT/" ||
    die "nginx did not start: $(cat "$TMP/nginx.out" "$TMP/nginx/error.log" 2>/dev/null)"
PID_OF[nginx-tls]=${PID_OF[nginx]}

# ---- HAProxy -----------------------------------------------------------------------------

cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    option forwardfor
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend bench
    bind 127.0.0.1:$HAPROXY_PORT
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Port %[dst_port]
    default_backend backend

backend backend
    server s1 127.0.0.1:$BACKEND_PORT
EOF
"${ON_PROXY_CORE[@]}" haproxy -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.out" 2>&1 &
PID_OF[haproxy]=$!
PIDS+=("${PID_OF[haproxy]}")
wait_http "http://127.0.0.1:$HAPROXY_PORT/" || die "HAProxy did not start: $(cat "$TMP/haproxy.out")"

# ---- what each row measures ----------------------------------------------------------

URL_OF[direct]="http://127.0.0.1:$BACKEND_PORT/"
URL_OF[berth]="http://127.0.0.1:$BERTH_PORT/"
URL_OF[berth-1]="http://127.0.0.1:$BERTH_1_PORT/"
URL_OF[berth-many]="http://127.0.0.1:$BERTH_MANY_PORT/"
URL_OF[nginx]="http://127.0.0.1:$NGINX_PORT/"
URL_OF[haproxy]="http://127.0.0.1:$HAPROXY_PORT/"
URL_OF[berth-baseline]="http://127.0.0.1:$BASELINE_PORT/"
URL_OF[berth-tls]="https://127.0.0.1:$BERTH_TLS_PORT/"
URL_OF[nginx-tls]="https://127.0.0.1:$NGINX_TLS_PORT/"
declare -A LABEL_OF=(
    [direct]="direct (no proxy)"
    [berth]="berth"
    [berth-baseline]="berth (baseline)"
    [nginx]="nginx"
    [haproxy]="HAProxy"
    [berth-1]="berth, 1 rule"
    [berth-many]="berth, $RULES_MANY rules"
    [berth-tls]="berth HTTPS"
    [nginx-tls]="nginx HTTPS"
)
RUNS=(direct berth nginx haproxy berth-1 berth-many)
if [[ -n ${BASELINE:-} ]]; then
    RUNS=(direct berth berth-baseline nginx haproxy berth-1 berth-many)
fi
if ((HTTPS)); then
    RUNS+=(berth-tls nginx-tls)
fi

for run in "${RUNS[@]}"; do
    extra=()
    [[ ${URL_OF[$run]} == https* ]] && extra=(-k)
    wait_http "${URL_OF[$run]}" "${extra[@]}" || die "$run does not forward to the backend"
done

# ---- measurement (proc_tree, cpu_ticks, rss_kib, to_us: common.sh) -------------------

mkdir -p "$TMP/results"

# measure RUN ROUND: one warm-up and one measured wrk run; appends
# "req/s p50_us p99_us rss_kib cpu_us_per_req errors" to results/RUN.
measure() {
    local run=$1 round=$2 url=${URL_OF[$1]} pids=() out before after requests rps p50 p99 rss cpu errors
    if [[ $run != direct ]]; then
        mapfile -t pids < <(proc_tree "${PID_OF[$run]}")
    fi
    "${ON_LOAD_CORE[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
    out="$TMP/wrk.$run.$round.txt"
    before=$(cpu_ticks "${pids[@]}")
    "${ON_LOAD_CORE[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" >"$out" 2>&1 ||
        die "wrk failed against $run: $(cat "$out")"
    after=$(cpu_ticks "${pids[@]}")
    rss=$(rss_kib "${pids[@]}")
    requests=$(awk '/ requests in / {print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
    errors=$(awk '/Non-2xx or 3xx responses:/ {e += $NF}
        /Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10}
        END {print e + 0}' "$out")
    [[ -n $requests && -n $rps ]] || die "could not read wrk's output for $run: $(cat "$out")"
    local busy=-
    if [[ $run == direct ]]; then
        cpu=-
        rss=-
    else
        cpu=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
            'BEGIN {printf "%.2f", d * 1000000 / hz / n}')
        # How much of its core the proxy used: well under 100 % means something else
        # (another process on the core, or the load side) limited req/s in this run.
        busy=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v t="$DURATION" \
            'BEGIN {printf "%.0f%%", d * 100 / hz / t}')
    fi
    echo "$rps $p50 $p99 $rss $cpu $errors" >>"$TMP/results/$run"
    log "  round $round  ${LABEL_OF[$run]}: $rps req/s, p50 ${p50} us, p99 ${p99} us, CPU/req ${cpu} us, proxy core use $busy, errors $errors"
}

threads_of() {
    local n=0 pid
    for pid in $(proc_tree "$1"); do
        n=$((n + $(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 | wc -l)))
    done
    echo "$n"
}
log "threads: berth $(threads_of "${PID_OF[berth]}"), nginx $(threads_of "${PID_OF[nginx]}") (master + worker)," \
    "HAProxy $(threads_of "${PID_OF[haproxy]}")"
log "measuring: ${#RUNS[@]} configurations x $ROUNDS rounds x ${DURATION} s (+${WARMUP} s warm-up each);" \
    "proxies on core $PROXY_CORE, backend and wrk on core $LOAD_CORE"
for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate the order each round so no configuration always runs first or last.
    n=${#RUNS[@]}
    for ((i = 0; i < n; i++)); do
        measure "${RUNS[$(((i + round - 1) % n))]}" "$round"
    done
done

# ---- table ---------------------------------------------------------------------------

# median COLUMN RUN: the median of one column of results/RUN ("-" stays "-").
median() {
    awk -v c="$1" '{print $c}' "$TMP/results/$2" | sort -g | awk '
        {a[NR] = $1}
        END {
            if (NR == 0 || a[1] == "-") { print "-"; exit }
            if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2
        }'
}

# spread COLUMN RUN: "min–max" of one column over the rounds.
spread() {
    awk -v c="$1" '{print $c}' "$TMP/results/$2" | sort -g | awk '
        NR == 1 {lo = $1} {hi = $1}
        END {if (lo == "-" || NR < 2) print ""; else printf " (%.1f–%.1f)", lo, hi}'
}

declare -A RPS P50 P99 RSS CPU ERR
for run in "${RUNS[@]}"; do
    RPS[$run]=$(median 1 "$run")
    P50[$run]=$(median 2 "$run")
    P99[$run]=$(median 3 "$run")
    RSS[$run]=$(median 4 "$run")
    CPU[$run]=$(median 5 "$run")
    ERR[$run]=$(awk '{e += $6} END {print e + 0}' "$TMP/results/$run")
done
best_http_peer=$(awk -v a="${CPU[nginx]}" -v b="${CPU[haproxy]}" 'BEGIN {print (a <= b) ? a : b}')

fmt_ms() { awk -v u="$1" 'BEGIN {printf "%.2f ms", u / 1000}'; }
fmt_mib() { [[ $1 == - ]] && echo "-" || awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
ratio() { [[ $1 == - || $2 == - ]] && echo "-" || awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "-"}'; }

echo
echo "### berth load balancer vs peers ($(date -u +%Y-%m-%d), median of $ROUNDS × ${DURATION} s, wrk $CONNECTIONS connections HTTP/1.1 keep-alive)"
echo
echo "| run | req/s | req/s vs direct | p50 | p99 | proxy RSS | proxy CPU µs/req (min–max) | CPU/req vs best peer | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for run in "${RUNS[@]}"; do
    peer=$best_http_peer
    [[ $run == *-tls ]] && peer=${CPU[nginx-tls]}
    cpu_cell=${CPU[$run]}
    [[ $cpu_cell != - ]] && cpu_cell="$(awk -v c="$cpu_cell" 'BEGIN {printf "%.1f", c}')$(spread 5 "$run")"
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' \
        "${LABEL_OF[$run]}" "${RPS[$run]}" "$(ratio "${RPS[$run]}" "${RPS[direct]}")" \
        "$(fmt_ms "${P50[$run]}")" "$(fmt_ms "${P99[$run]}")" "$(fmt_mib "${RSS[$run]}")" \
        "$cpu_cell" "$(ratio "${CPU[$run]}" "$peer")" "${ERR[$run]}"
done
echo
echo "Best peer CPU/req (HTTP): $best_http_peer µs. Rule cost: $RULES_MANY non-matching path-pattern rules" \
    "vs 1 add $(awk -v a="${CPU[berth-many]}" -v b="${CPU[berth-1]}" -v n="$RULES_MANY" \
        'BEGIN {d = a - b; r = (n > 1) ? n - 1 : 1; printf "%.2f µs/request (%.0f ns per rule)", d, d * 1000 / r
               if (d <= 0) printf ", i.e. less than this run'"'"'s noise"}') of proxy CPU."
echo "Layout: proxies pinned to core $PROXY_CORE, single-threaded (berth 1 worker thread, nginx 1 worker," \
    "HAProxy nbthread 1); backend and wrk pinned to core $LOAD_CORE. RSS is read at the end of each run;" \
    "for nginx it is master + worker. CPU/req is the proxy's utime+stime during the run ÷ requests."
echo "Versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v 2>/dev/null | head -1 | awk '{print "HAProxy " $3}'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'); $ncpu cores, load average at end: $(cut -d' ' -f1-3 /proc/loadavg)."
if [[ -n $HTTPS_NOTE ]]; then
    echo "$HTTPS_NOTE"
else
    # What each side negotiated with an OpenSSL client (wrk uses OpenSSL too).
    negotiated() {
        timeout 5 openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
            awk '/^New, / {sub(/^New, /, ""); sub(/, Cipher is /, " "); print; exit}'
    }
    echo "HTTPS: ECDSA P-256 certificate, client keep-alive (no handshakes during the run); negotiated:" \
        "berth $(negotiated "$BERTH_TLS_PORT"), nginx $(negotiated "$NGINX_TLS_PORT")."
fi
