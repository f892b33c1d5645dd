#!/usr/bin/env bash
# berth mesh: the cost of one mesh hop (client → node proxy → mutual TLS 1.3 → the
# target node's inbound proxy → the server), against nginx doing the same two hops.
#
# One machine, one backend (berth-bench-backend), one load generator (wrk, HTTP/1.1
# keep-alive, Host: orders.internal, the client alias). Both hops of each proxy run in one
# process on one core, single-threaded, as one node serving both ends would:
# - berth: berth-bench-mesh, one worker thread: a mesh listener (plain HTTP, one client
#   alias) → the mesh target group's one target, whose hop is the same proxy's inbound
#   listener (mutual TLS 1.3, SPIFFE certificates of a CA made at start with rcgen) →
#   the backend.
# - nginx: one worker serving two servers: A (plain HTTP; proxy_pass https:// to B over a
#   keep-alive upstream, presenting a client certificate, verifying B's against the CA,
#   TLS 1.3) → B (TLS 1.3, ssl_verify_client on with the CA; keep-alive upstream to the
#   backend). Certificates (ECDSA P-256) made here with openssl.
# The backend and wrk share the other core. Two loads: CONNECTIONS_MODERATE (10) and
# CONNECTIONS_HIGH (50) wrk connections. Runs are interleaved and repeated; the table shows
# medians.
#
# Usage:
#   benches/mesh.sh                # full: 3 rounds x 10 s per configuration and load
#   QUICK=1 benches/mesh.sh        # quick: 1 round x 3 s
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10] seconds per measured run  WARMUP [2] seconds before each run
#   CONNECTIONS_MODERATE [10]  CONNECTIONS_HIGH [50]  PROXY_CORE [0]  LOAD_CORE [1]
#   BASE_PORT [18180] (uses the next 3 ports too)
#   KEEP_TMP=1 keeps the working directory (configs, certificates, wrk outputs, logs).
#
# Needs: wrk, nginx, openssl, taskset, curl, cargo. On Debian/Ubuntu:
#   apt-get install -y wrk nginx-light openssl util-linux curl

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
CONNECTIONS_MODERATE=${CONNECTIONS_MODERATE:-10}
CONNECTIONS_HIGH=${CONNECTIONS_HIGH:-50}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
BASE_PORT=${BASE_PORT:-18180}

BACKEND_PORT=$BASE_PORT
BERTH_PORT=$((BASE_PORT + 1))
NGINX_A_PORT=$((BASE_PORT + 2))
NGINX_B_PORT=$((BASE_PORT + 3))

# The client alias every request names, and the server name of the called service.
ALIAS=orders.internal
SERVER_NAME=orders.internal.mesh

log() { printf '%s\n' "$*" >&2; }
die() { log "mesh.sh: $*"; exit 1; }

# ---- prerequisites -------------------------------------------------------------------

missing=()
for tool in wrk nginx openssl taskset curl cargo awk; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "mesh.sh: missing: ${missing[*]}"
    log "On Debian/Ubuntu: apt-get install -y wrk nginx-light openssl util-linux curl"
    exit 1
fi
ncpu=$(getconf _NPROCESSORS_ONLN)
((ncpu >= 2)) || die "needs at least 2 cores (proxy on one, backend and wrk on the other); found $ncpu"
CLK_TCK=$(getconf CLK_TCK)

# ---- build -----------------------------------------------------------------------------

log "building berth-bench-mesh and berth-bench-backend (release)..."
(cd "$ROOT" && cargo build --release --quiet -p berth-benches --bin berth-bench-mesh --bin berth-bench-backend) ||
    die "cargo build failed"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
[[ -x $BIN/berth-bench-mesh && -x $BIN/berth-bench-backend ]] || die "binaries not found in $BIN"

# ---- working directory and cleanup ---------------------------------------------------

BENCH_NAME=berth-mesh-bench
source "$ROOT/benches/common.sh"

# wait_alias_http URL: waits until URL, asked for the alias, answers with the backend's body.
wait_alias_http() {
    wait_http "$1" -H "Host: $ALIAS"
}

# ---- backend -----------------------------------------------------------------------------

"${ON_LOAD_CORE[@]}" "$BIN/berth-bench-backend" --listen "127.0.0.1:$BACKEND_PORT" >"$TMP/backend.out" 2>&1 &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
wait_ready_line "$TMP/backend.out" "$BACKEND_PID" || die "backend did not start: $(cat "$TMP/backend.out")"

# ---- berth -------------------------------------------------------------------------------

declare -A PID_OF URL_OF
"${ON_PROXY_CORE[@]}" "$BIN/berth-bench-mesh" --listen "$BERTH_PORT" \
    --backend "127.0.0.1:$BACKEND_PORT" --threads 1 >"$TMP/berth.out" 2>"$TMP/berth.err" &
PID_OF[berth]=$!
PIDS+=("${PID_OF[berth]}")
wait_ready_line "$TMP/berth.out" "${PID_OF[berth]}" ||
    die "berth-bench-mesh did not become ready: $(cat "$TMP/berth.err")"

# ---- certificates for nginx (the same shape as berth's: ECDSA P-256, SPIFFE URI SANs) --

CERTS=$TMP/certs
mkdir -p "$CERTS"
make_certs() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$CERTS/ca.key" -out "$CERTS/ca.pem" -days 2 -subj "/CN=berth benchmark mesh CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    # issue NAME SANS: a leaf signed by the CA, for both TLS client and server use.
    issue() {
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$CERTS/$1.key" -out "$CERTS/$1.csr" -subj "/CN=$1"
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' \
            "$2" >"$CERTS/$1.ext"
        openssl x509 -req -in "$CERTS/$1.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" \
            -CAcreateserial -days 2 -out "$CERTS/$1.pem" -extfile "$CERTS/$1.ext"
    }
    issue orders "URI:spiffe://bench/ns/internal/sa/orders,DNS:$SERVER_NAME"
    issue frontend "URI:spiffe://bench/ns/internal/sa/frontend,DNS:frontend.internal.mesh"
    chmod 644 "$CERTS"/*
}
make_certs >"$TMP/openssl.log" 2>&1 || die "openssl could not make the certificates: $(cat "$TMP/openssl.log")"

# ---- nginx: A (the calling node's proxy) and B (the called node's inbound proxy) -------

mkdir -p "$TMP/nginx"/{body,proxy,fastcgi,uwsgi,scgi}
chmod -R 777 "$TMP/nginx"
{
    nginx_preamble
    cat <<EOF

    # B's side: the called node's inbound proxy to its task.
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 10000000;
        keepalive_timeout 60s;
    }
    # A's side: the hop to the called node's inbound proxy.
    upstream mesh_hop {
        server 127.0.0.1:$NGINX_B_PORT;
        keepalive 64;
        keepalive_requests 10000000;
        keepalive_timeout 60s;
    }

    # A: the client alias, plain HTTP from the calling task.
    server {
        listen 127.0.0.1:$NGINX_A_PORT;
        location / {
            proxy_pass https://mesh_hop;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Port \$server_port;
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_certificate $CERTS/frontend.pem;
            proxy_ssl_certificate_key $CERTS/frontend.key;
            proxy_ssl_trusted_certificate $CERTS/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 2;
            proxy_ssl_name $SERVER_NAME;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }
    }

    # B: the inbound proxy, mutual TLS 1.3 only.
    server {
        listen 127.0.0.1:$NGINX_B_PORT ssl;
        ssl_protocols TLSv1.3;
        ssl_certificate $CERTS/orders.pem;
        ssl_certificate_key $CERTS/orders.key;
        ssl_client_certificate $CERTS/ca.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"
"${ON_PROXY_CORE[@]}" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx.out" 2>&1 &
PID_OF[nginx]=$!
PIDS+=("${PID_OF[nginx]}")

# ---- what each row measures ----------------------------------------------------------

URL_OF[direct]="http://127.0.0.1:$BACKEND_PORT/"
URL_OF[berth]="http://127.0.0.1:$BERTH_PORT/"
URL_OF[nginx]="http://127.0.0.1:$NGINX_A_PORT/"
declare -A LABEL_OF=(
    [direct]="direct (no proxy)"
    [berth]="berth mesh hop"
    [nginx]="nginx two hops"
)
RUNS=(direct berth nginx)
LOADS=("$CONNECTIONS_MODERATE" "$CONNECTIONS_HIGH")

for run in "${RUNS[@]}"; do
    wait_alias_http "${URL_OF[$run]}" ||
        die "$run does not forward to the backend: $(cat "$TMP/nginx.out" "$TMP/nginx/error.log" 2>/dev/null)"
done
# nginx's hop really is mutual TLS: B refuses a client without a certificate.
if curl -fsS -k --max-time 2 "https://127.0.0.1:$NGINX_B_PORT/" >/dev/null 2>&1; then
    die "nginx B answered a client without a certificate"
fi

# ---- measurement (proc_tree, cpu_ticks, rss_kib, to_us: common.sh) -------------------

mkdir -p "$TMP/results"

# measure RUN CONNECTIONS ROUND: one warm-up and one measured wrk run; appends
# "req/s p50_us p99_us cpu_us_per_req errors core_use_percent" to results/RUN.CONNECTIONS.
measure() {
    local run=$1 conns=$2 round=$3 url=${URL_OF[$1]} pids=() out before after requests rps p50 p99 cpu errors
    if [[ $run != direct ]]; then
        mapfile -t pids < <(proc_tree "${PID_OF[$run]}")
    fi
    "${ON_LOAD_CORE[@]}" wrk -t1 -c"$conns" -d"${WARMUP}s" -H "Host: $ALIAS" "$url" >/dev/null 2>&1 || true
    out="$TMP/wrk.$run.$conns.$round.txt"
    before=$(cpu_ticks "${pids[@]}")
    "${ON_LOAD_CORE[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" --latency -H "Host: $ALIAS" "$url" >"$out" 2>&1 ||
        die "wrk failed against $run: $(cat "$out")"
    after=$(cpu_ticks "${pids[@]}")
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
    else
        cpu=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
            'BEGIN {printf "%.2f", d * 1000000 / hz / n}')
        # How much of its core the proxy used: near 100 % means the proxy was the limit.
        busy=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v t="$DURATION" \
            'BEGIN {printf "%.0f", d * 100 / hz / t}')
    fi
    echo "$rps $p50 $p99 $cpu $errors $busy" >>"$TMP/results/$run.$conns"
    log "  round $round  $conns conns  ${LABEL_OF[$run]}: $rps req/s, p50 ${p50} us, p99 ${p99} us, CPU/req ${cpu} us, proxy core use ${busy} %, errors $errors"
}

log "measuring: ${#RUNS[@]} configurations x ${#LOADS[@]} loads x $ROUNDS rounds x ${DURATION} s" \
    "(+${WARMUP} s warm-up each); proxies on core $PROXY_CORE, backend and wrk on core $LOAD_CORE"
for ((round = 1; round <= ROUNDS; round++)); do
    for conns in "${LOADS[@]}"; do
        # Rotate the order each round so no configuration always runs first or last.
        n=${#RUNS[@]}
        for ((i = 0; i < n; i++)); do
            measure "${RUNS[$(((i + round - 1) % n))]}" "$conns" "$round"
        done
    done
done

# ---- table ---------------------------------------------------------------------------

# median COLUMN KEY: the median of one column of results/KEY ("-" stays "-").
median() {
    awk -v c="$1" '{print $c}' "$TMP/results/$2" | sort -g | awk '
        {a[NR] = $1}
        END {
            if (NR == 0 || a[1] == "-") { print "-"; exit }
            if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2
        }'
}

# spread COLUMN KEY: " (min–max)" of one column over the rounds.
spread() {
    awk -v c="$1" '{print $c}' "$TMP/results/$2" | sort -g | awk '
        NR == 1 {lo = $1} {hi = $1}
        END {if (lo == "-" || NR < 2) print ""; else printf " (%.1f–%.1f)", lo, hi}'
}

fmt_ms() { awk -v u="$1" 'BEGIN {printf "%.2f ms", u / 1000}'; }
# ratio A B: A ÷ B as "0.75×"; "-" unless both are positive.
ratio() { [[ $1 == - || $2 == - ]] && echo "-" || awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0 && b > 0) printf "%.2f×", a / b; else print "-"}'; }

declare -A RPS P50 P99 ADDED CPU ERR BUSY
for conns in "${LOADS[@]}"; do
    for run in "${RUNS[@]}"; do
        key=$run.$conns
        RPS[$key]=$(median 1 "$key")
        P50[$key]=$(median 2 "$key")
        P99[$key]=$(median 3 "$key")
        CPU[$key]=$(median 4 "$key")
        ERR[$key]=$(awk '{e += $5} END {print e + 0}' "$TMP/results/$key")
        BUSY[$key]=$(median 6 "$key")
        ADDED[$key]=$(awk -v a="${P99[$key]}" -v b="${P99[direct.$conns]}" 'BEGIN {printf "%.1f", a - b}')
    done
done

echo
echo "### berth mesh hop vs nginx ($(date -u +%Y-%m-%d), median of $ROUNDS × ${DURATION} s, wrk HTTP/1.1 keep-alive)"
echo
echo "| wrk connections | run | req/s | p50 | p99 | p99 added over direct | proxy CPU µs/req (min–max) | proxy core use | CPU/req berth/nginx | req/s berth/nginx | p99 added berth/nginx | errors |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for conns in "${LOADS[@]}"; do
    for run in "${RUNS[@]}"; do
        key=$run.$conns
        cpu_cell=${CPU[$key]}
        [[ $cpu_cell != - ]] && cpu_cell="$(awk -v c="$cpu_cell" 'BEGIN {printf "%.1f", c}')$(spread 4 "$key")"
        added=-
        [[ $run != direct ]] && added=$(fmt_ms "${ADDED[$key]}")
        busy=-
        [[ $run != direct ]] && busy="${BUSY[$key]} %"
        cpu_ratio=-
        rps_ratio=-
        added_ratio=-
        if [[ $run == berth ]]; then
            cpu_ratio=$(ratio "${CPU[$key]}" "${CPU[nginx.$conns]}")
            rps_ratio=$(ratio "${RPS[$key]}" "${RPS[nginx.$conns]}")
            added_ratio=$(ratio "${ADDED[$key]}" "${ADDED[nginx.$conns]}")
        fi
        printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
            "$conns" "${LABEL_OF[$run]}" "${RPS[$key]}" "$(fmt_ms "${P50[$key]}")" \
            "$(fmt_ms "${P99[$key]}")" "$added" "$cpu_cell" "$busy" "$cpu_ratio" "$rps_ratio" \
            "$added_ratio" "${ERR[$key]}"
    done
done
echo
echo "Layout: each proxy serves both hops in one process pinned to core $PROXY_CORE, single-threaded" \
    "(berth-bench-mesh 1 worker thread; nginx 1 worker serving A and B); backend and wrk pinned to" \
    "core $LOAD_CORE. CPU/req is the proxy's utime+stime during the run ÷ requests (nginx: master + worker)." \
    "p99 added is the row's median p99 minus direct's at the same load. Proxy core use is the median share of" \
    "core $PROXY_CORE the proxy used: well under 100 % means something else on the machine limited those runs."
# What nginx B negotiates with a client presenting the caller's certificate.
negotiated=$(timeout 5 openssl s_client -connect "127.0.0.1:$NGINX_B_PORT" -servername "$SERVER_NAME" \
    -cert "$CERTS/frontend.pem" -key "$CERTS/frontend.key" -CAfile "$CERTS/ca.pem" </dev/null 2>/dev/null |
    awk '/^New, / {sub(/^New, /, ""); sub(/, Cipher is /, " "); print; exit}')
echo "Hop: mutual TLS 1.3, ECDSA P-256 certificates on both sides, pooled keep-alive hop connections" \
    "(no handshakes during the run); nginx B negotiated ${negotiated:-?}."
echo "Versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(openssl version | awk '{print $1 " " $2}')," \
    "$(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'); $ncpu cores, load average at end: $(cut -d' ' -f1-3 /proc/loadavg)."
