#!/usr/bin/env bash
# berth load balancer against nginx and HAProxy, workload by workload.
#
# One machine, one backend (berth-bench-backend), the same load tools for every proxy. For
# each workload group the three proxies are started fresh, measured in turn (the order
# rotates every round), repeated ROUNDS times, stopped, and one markdown table per group
# is printed: medians, min–max of the CPU figure, ratios to the best peer (the lower of
# nginx and HAProxy). Each proxy does the same work: keep-alive to the client, pooled
# keep-alive connections to the backend, X-Forwarded-For / -Proto / -Port, no access log;
# berth runs with its features on as berth-bench-proxy configures them (health checks,
# metrics, edge checks, retries).
#
# Groups (ONLY=name,... or numbers):
#   1 keepalive  small keep-alive GETs: 1 thread pinned; 2 threads unpinned
#   2 close      a new connection per request (Connection: close), 1 thread pinned
#   3 tls        full TLS 1.3 handshakes (ECDSA P-256, RSA 2048), resumed handshakes,
#                keep-alive requests over TLS
#   4 h2         HTTP/2 (h2c, prior knowledge) from the client, 100 streams per connection
#   5 bodies     1 MiB and 100 MiB downloads and uploads
#   6 idle       10,000 idle keep-alive connections and 1,000 idle WebSockets held open
#                while wrk runs
#   7 rules      1,000 non-matching rules + 1,000 targets against 1 rule + 1 target
#   8 http10     HTTP/1.0 clients (ab's requests): keep-alive, and a connection per request
#   9 https-targets  keep-alive GETs to an HTTPS target group (TLS to the backend)
#
# Usage:
#   benches/workloads.sh                    # every group, ROUNDS rounds (release build)
#   QUICK=1 benches/workloads.sh            # 1 round, short runs, 1,000 idle connections
#   ONLY=tls,h2 benches/workloads.sh        # some groups
# Environment (defaults in brackets):
#   ROUNDS [3, QUICK 1]  DURATION [10, QUICK 3] seconds  WARMUP [2, QUICK 1] seconds
#   CONNECTIONS [50] wrk connections  PROXY_CORE [0]  LOAD_CORE [1]  BASE_PORT [19100]
#   PROFILE [release] (debug: build and use debug binaries, to check the script quickly;
#     bench-fast: release code without fat LTO, for quick before/after comparisons)
#   HANDSHAKE_CONCURRENCY [16]  H2_CONNECTIONS [10]  BODY_CONNECTIONS [4]
#   LARGE_DURATION [DURATION, at least 10] seconds per 100 MiB body run
#   IDLE_KEEPALIVE [10000, QUICK 1000]  IDLE_WEBSOCKETS [1000, QUICK 200]
#   RULES_MANY [1000]  TARGETS_MANY [1000]  KEEP_TMP=1 keeps configs and tool outputs.
#   BUILD=0 uses the binaries already built (in $CARGO_TARGET_DIR or target/).
#
# Needs: wrk, h2load, nginx, haproxy, taskset, curl, openssl, cargo. On Debian/Ubuntu:
#   apt-get install -y wrk nginx-light haproxy nghttp2-client openssl util-linux curl

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=berth-workloads

if [[ "${QUICK:-0}" == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-3}
    WARMUP=${WARMUP:-1}
    IDLE_KEEPALIVE=${IDLE_KEEPALIVE:-1000}
    IDLE_WEBSOCKETS=${IDLE_WEBSOCKETS:-200}
else
    ROUNDS=${ROUNDS:-3}
    DURATION=${DURATION:-10}
    WARMUP=${WARMUP:-2}
    IDLE_KEEPALIVE=${IDLE_KEEPALIVE:-10000}
    IDLE_WEBSOCKETS=${IDLE_WEBSOCKETS:-1000}
fi
CONNECTIONS=${CONNECTIONS:-50}
LARGE_DURATION=${LARGE_DURATION:-$((DURATION < 10 ? 10 : DURATION))}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
BASE_PORT=${BASE_PORT:-19100}
PROFILE=${PROFILE:-release}
HANDSHAKE_CONCURRENCY=${HANDSHAKE_CONCURRENCY:-16}
H2_CONNECTIONS=${H2_CONNECTIONS:-10}
BODY_CONNECTIONS=${BODY_CONNECTIONS:-4}
RULES_MANY=${RULES_MANY:-1000}
TARGETS_MANY=${TARGETS_MANY:-1000}

log() { printf '%s\n' "$*" >&2; }
die() { log "workloads.sh: $*"; exit 1; }

# ---- which groups ------------------------------------------------------------------------

ALL_GROUPS=(keepalive close tls h2 bodies idle rules http10 https-targets)
declare -A WANT=()
if [[ -n ${ONLY:-} ]]; then
    IFS=, read -ra asked <<<"$ONLY"
    for g in "${asked[@]}"; do
        if [[ $g =~ ^[1-9]$ ]]; then
            g=${ALL_GROUPS[$((g - 1))]}
        fi
        [[ " ${ALL_GROUPS[*]} " == *" $g "* ]] ||
            die "ONLY: unknown group '$g' (groups: ${ALL_GROUPS[*]}, or 1-9)"
        WANT[$g]=1
    done
else
    for g in "${ALL_GROUPS[@]}"; do WANT[$g]=1; done
fi
wants() { [[ -n ${WANT[$1]:-} ]]; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer, got '$DURATION'"
[[ $LARGE_DURATION =~ ^[1-9][0-9]*$ ]] || die "LARGE_DURATION must be a positive integer, got '$LARGE_DURATION'"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a whole number of seconds, got '$WARMUP'"
[[ $PROFILE == release || $PROFILE == debug || $PROFILE == bench-fast ]] ||
    die "PROFILE must be release, bench-fast or debug, got '$PROFILE'"

# ---- prerequisites -------------------------------------------------------------------

need=(wrk nginx haproxy taskset curl cargo awk)
wants tls && need+=(openssl)
wants https-targets && need+=(openssl)
wants h2 && need+=(h2load)
missing=()
for tool in "${need[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "workloads.sh: missing: ${missing[*]}"
    log "On Debian/Ubuntu: apt-get install -y wrk nginx-light haproxy nghttp2-client openssl util-linux curl"
    exit 1
fi
ncpu=$(getconf _NPROCESSORS_ONLN)
((ncpu >= 2)) || die "needs at least 2 cores (proxy on one, load and backend on the other); found $ncpu"
CLK_TCK=$(getconf CLK_TCK)
# Every process started from here inherits the highest open-file limit allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
if wants idle && ((NOFILE < IDLE_KEEPALIVE + 1000)); then
    die "open-file limit $NOFILE is too low for IDLE_KEEPALIVE=$IDLE_KEEPALIVE (raise ulimit -Hn or lower IDLE_KEEPALIVE)"
fi

# ---- build -----------------------------------------------------------------------------

profile_flag=()
[[ $PROFILE == release ]] && profile_flag=(--release)
[[ $PROFILE == bench-fast ]] && profile_flag=(--profile bench-fast)
if [[ ${BUILD:-1} == 1 ]]; then
    log "building the bench binaries ($PROFILE)..."
    (cd "$ROOT" && cargo build "${profile_flag[@]}" --quiet -p berth-benches --bins) || die "cargo build failed"
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE
bins=(berth-bench-proxy berth-bench-backend)
wants tls && bins+=(berth-bench-handshake)
wants idle && bins+=(berth-bench-idle)
for b in "${bins[@]}"; do
    [[ -x $BIN/$b ]] || die "$b not found in $BIN"
done

source "$ROOT/benches/common.sh"
source "$ROOT/benches/workloads_peers.sh"
source "$ROOT/benches/workloads_measure.sh"

NEXT_PORT=$BASE_PORT
# take_port: sets PORT to the next free port of this run's range.
take_port() {
    PORT=$NEXT_PORT
    NEXT_PORT=$((NEXT_PORT + 1))
}

# ---- backend -----------------------------------------------------------------------------

take_port
BACKEND_PORT=$PORT
backend_targets=1
wants rules && backend_targets=$TARGETS_MANY
"${ON_LOAD_CORE[@]}" "$BIN/berth-bench-backend" --listen "127.0.0.1:$BACKEND_PORT" \
    --targets "$backend_targets" >"$TMP/backend.out" 2>&1 &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
wait_ready_line "$TMP/backend.out" "$BACKEND_PID" || die "backend did not start: $(cat "$TMP/backend.out")"

declare -A PID_OF=() URL_OF=() LABEL_OF=() PREVIOUS=()
mkdir -p "$TMP/results"
nginx_proxy_include "$TMP/proxy.inc"

# Earlier figures for berth's rows, printed beside this run's (no workload may get worse)
# after the figures of the same row in the README's tables of this script
# (`readme_figures`). From benches/README.md "Results": 2026-11-24 (5 × 10 s) and
# 2026-11-30 (3 × 10 s), berth's single-threaded pinned rows.
PREVIOUS[ka1/ka1-berth]="15.5 µs, 59352 req/s, p99 1.15 ms (2026-11-24); 19.9 µs, 45118 req/s, p99 3.23 ms (2026-11-30)"
PREVIOUS[tls-ka/tls-ec-berth]="18.8 µs, 44623 req/s (2026-11-24); 21.6 µs, 40175 req/s (2026-11-30)"
PREVIOUS[rules/rules-1-berth]="1 rule: 16.7 µs (2026-11-24); 18.8 µs (2026-11-30)"
PREVIOUS[rules/rules-r-berth]="100 rules: 16.4 µs (2026-11-24); 18.7 µs (2026-11-30)"

# rotate ROUND RUN...: the runs in this round's order (each round starts one later).
rotate() {
    local round=$1 n i
    shift
    n=$#
    local runs=("$@")
    for ((i = 0; i < n; i++)); do
        echo "${runs[$(((i + round - 1) % n))]}"
    done
}

# check_url URL CURL_OPTS...: the URL answers with the backend's body, or the run stops.
check_url() {
    local url=$1
    shift
    wait_http "$url" "$@" || die "$url does not forward to the backend"
}

source "$ROOT/benches/workloads_groups.sh"

# ---- run -------------------------------------------------------------------------------------

log "groups: $(for g in "${ALL_GROUPS[@]}"; do wants "$g" && printf "%s " "$g"; done); $ROUNDS round(s) × ${DURATION} s (+${WARMUP} s warm-up); proxies pinned to core $PROXY_CORE where pinned, load and backend on core $LOAD_CORE"
echo "## berth workloads ($(date -u +%Y-%m-%d), $PROFILE build, median of $ROUNDS × ${DURATION} s)"
for g in "${ALL_GROUPS[@]}"; do
    if wants "$g"; then
        log "=== $g"
        "group_$g"
    fi
done
echo
echo "Versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v 2>/dev/null | head -1 | awk '{print "HAProxy " $3}'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'), $(h2load --version 2>/dev/null | awk '{print "h2load " $2}'); $ncpu cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load average at end: $(cut -d' ' -f1-3 /proc/loadavg)."
