# Sourced by benches/workloads.sh, not run: the workload groups. Each starts its
# proxies (berth, nginx, HAProxy), measures them round by round in a rotating order, prints
# its tables and stops them again. It installs nothing and builds nothing.
#
# Expects everything workloads.sh sets up: BIN, TMP, BACKEND_PORT, ROUNDS, take_port,
# rotate, check_url, and the functions of workloads_peers.sh and workloads_measure.sh.

# start_trio PREFIX THREADS PIN: berth, nginx and HAProxy, each with THREADS threads (or
# workers), pinned to the proxy core when PIN is 1, forwarding to the backend. Runs are
# PREFIX-berth, PREFIX-nginx and PREFIX-haproxy, with URL_OF set. Optional settings (reset
# after each call):
#   TRIO_TLS="CERT KEY"      HTTPS listeners (HTTP/1.1 only in ALPN for nginx and HAProxy)
#   TRIO_H2C=1               nginx's listener speaks h2c (prior knowledge) only
#   TRIO_BERTH_ARGS=(...)    more berth-bench-proxy flags (--rules, --targets)
#   TRIO_RULES=N             N non-matching path rules in nginx and HAProxy too
#   TRIO_TARGETS=N           N backend addresses (loopback_targets) in nginx and HAProxy
#   TRIO_UPSTREAM_TLS=1      the backend speaks HTTPS (an HTTPS target group; certificates
#                            not verified, as an ALB does not verify its targets')
trio_reset() {
    TRIO_TLS=""
    TRIO_H2C=0
    TRIO_UPSTREAM_TLS=0
    TRIO_BERTH_ARGS=()
    TRIO_RULES=0
    TRIO_TARGETS=1
}
trio_reset

start_trio() {
    local prefix=$1 threads=$2 pin=$3 scheme=http listen_extra="" ssl_lines="" bind_extra=""
    local targets servers="" locations="" acls="" i cert key upstream=http server_tls="" berth_tls=()
    [[ -n $TRIO_TLS ]] && scheme=https
    if ((TRIO_UPSTREAM_TLS)); then
        upstream=https
        server_tls=" ssl verify none"
        berth_tls=(--backend-https)
    fi
    mapfile -t targets < <(loopback_targets "$TRIO_TARGETS")
    for ((i = 0; i < ${#targets[@]}; i++)); do
        servers+="    server s$i ${targets[$i]}$server_tls"$'\n'
    done
    for ((i = 0; i < TRIO_RULES; i++)); do
        locations+="        location /svc$i/ { return 404; }"$'\n'
        acls+="    use_backend backend if { path_beg /svc$i/ }"$'\n'
    done

    take_port
    # As `berth server` runs it: connections on THREADS data plane threads, each its own
    # single-threaded runtime; health checks and the rest on one more.
    berth_start "$prefix-berth" "$PORT" "$pin" --threads 1 --data-plane-threads "$threads" \
        "${TRIO_BERTH_ARGS[@]}" "${berth_tls[@]}" \
        ${TRIO_TLS:+--tls $TRIO_TLS}
    URL_OF[$prefix-berth]="$scheme://127.0.0.1:$PORT"

    take_port
    if [[ -n $TRIO_TLS ]]; then
        read -r cert key <<<"$TRIO_TLS"
        listen_extra=" ssl"
        ssl_lines="        ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;"
    elif ((TRIO_H2C)); then
        listen_extra=" http2"
    fi
    nginx_start "$prefix-nginx" "$threads" "$pin" "$PORT" "$(nginx_upstream backend "${targets[@]}")
    map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
    server {
        listen 127.0.0.1:$PORT$listen_extra;
$ssl_lines
$locations        location / {
            proxy_pass $upstream://backend;
            include $TMP/proxy.inc;
        }
    }"
    URL_OF[$prefix-nginx]="$scheme://127.0.0.1:$PORT"

    take_port
    if [[ -n $TRIO_TLS ]]; then
        read -r cert key <<<"$TRIO_TLS"
        cat "$cert" "$key" >"$TMP/$prefix-haproxy.pem"
        bind_extra=" ssl crt $TMP/$prefix-haproxy.pem alpn http/1.1"
    fi
    haproxy_start "$prefix-haproxy" "$threads" "$pin" "$PORT" \
        "    bind 127.0.0.1:$PORT$bind_extra
$acls" "$servers"
    URL_OF[$prefix-haproxy]="$scheme://127.0.0.1:$PORT"

    LABEL_OF[$prefix-berth]="berth"
    LABEL_OF[$prefix-nginx]="nginx"
    LABEL_OF[$prefix-haproxy]="HAProxy"
    trio_reset
}

# check_trio PREFIX CURL_OPTS...: all three forward to the backend.
check_trio() {
    local prefix=$1 p
    shift
    for p in berth nginx haproxy; do
        check_url "${URL_OF[$prefix-$p]}/" "$@"
    done
}

trio() { echo "$1-berth" "$1-nginx" "$1-haproxy"; }

CPU_REQ="cpu:CPU µs/req (min–max)"

# 1: small keep-alive GETs.
group_keepalive() {
    mkdir -p "$TMP/results/ka1" "$TMP/results/ka2"
    start_trio ka1 1 1
    start_trio ka2 2 0
    # berth as it ran before its data plane threads: one work-stealing runtime, 2 threads.
    take_port
    berth_start ka2-berth-shared "$PORT" 0 --threads 2
    URL_OF[ka2-berth-shared]="http://127.0.0.1:$PORT"
    LABEL_OF[ka2-berth-shared]="berth, one shared runtime"
    check_trio ka1
    check_trio ka2
    check_url "${URL_OF[ka2-berth-shared]}/"
    local runs run
    read -ra runs <<<"$(trio ka1) $(trio ka2) ka2-berth-shared"
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        for run in $(rotate "$ROUND" "${runs[@]}"); do
            if [[ $run == ka1-* ]]; then
                measure_wrk ka1 "$run" "${URL_OF[$run]}/" 1 requests -t1 -c"$CONNECTIONS"
            else
                measure_wrk ka2 "$run" "${URL_OF[$run]}/" 0 requests -t2 -c$((CONNECTIONS * 2))
            fi
        done
    done
    print_table ka1 "1a. Small keep-alive GETs, one proxy thread pinned to core $PROXY_CORE (wrk -t1 -c$CONNECTIONS on core $LOAD_CORE)" \
        "rate:req/s,p50,p99,$CPU_REQ,cpuvs,ratevs,kernel,rss,errors,previous" $(trio ka1)
    print_table ka2 "1b. Small keep-alive GETs, two proxy threads unpinned (berth 2 data plane threads, nginx 2 workers, HAProxy nbthread 2; wrk -t2 -c$((CONNECTIONS * 2)) unpinned)" \
        "rate:req/s,p50,p99,$CPU_REQ,cpuvs,ratevs,kernel,rss,errors" $(trio ka2) ka2-berth-shared
    echo
    echo "The backend stays on core $LOAD_CORE (one thread) in 1b too. \"berth before\": berth's row of the same table in benches/README.md; in 1a also its pinned rows of the README's earlier tables (CPU µs/req, req/s, p99)."
    stop_runs $(trio ka1) $(trio ka2) ka2-berth-shared
}

# 2: a new connection per request.
group_close() {
    mkdir -p "$TMP/results/close"
    start_trio close 1 1
    check_trio close
    local run
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        for run in $(rotate "$ROUND" $(trio close)); do
            measure_wrk close "$run" "${URL_OF[$run]}/" 1 requests -t1 -c"$CONNECTIONS" -H 'Connection: close'
        done
    done
    print_table close "2. A new connection per request (wrk -t1 -c$CONNECTIONS, Connection: close), one proxy thread pinned" \
        "rate:connections/s,p50,p99,cpu:CPU µs/connection (min–max),cpuvs,ratevs,rss,errors" $(trio close)
    stop_runs $(trio close)
}

# 8: HTTP/1.0 clients (the requests `ab -k` and `ab` send), through wrk with a script:
# keep-alive asked for with `Connection: keep-alive`, and a new connection per request.
group_http10() {
    mkdir -p "$TMP/results/h10ka" "$TMP/results/h10close"
    cat >"$TMP/http10-keepalive.lua" <<'LUA'
local req = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
request = function() return req end
LUA
    cat >"$TMP/http10-close.lua" <<'LUA'
local req = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
request = function() return req end
LUA
    start_trio h10 1 1
    check_trio h10
    local run
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        for run in $(rotate "$ROUND" $(trio h10)); do
            measure_wrk h10ka "$run" "${URL_OF[$run]}/" 1 requests -t1 -c"$CONNECTIONS" -s "$TMP/http10-keepalive.lua"
        done
        for run in $(rotate "$ROUND" $(trio h10)); do
            measure_wrk h10close "$run" "${URL_OF[$run]}/" 1 requests -t1 -c"$CONNECTIONS" -s "$TMP/http10-close.lua"
        done
    done
    print_table h10ka "8a. HTTP/1.0 keep-alive GETs (Connection: keep-alive, as ab -k sends them; wrk -t1 -c$CONNECTIONS with a request script), one proxy thread pinned" \
        "rate:req/s,p50,p99,$CPU_REQ,cpuvs,ratevs,kernel,rss,errors" $(trio h10)
    print_table h10close "8b. HTTP/1.0 GETs, a new connection per request (as ab sends them; wrk -t1 -c$CONNECTIONS with a request script), one proxy thread pinned" \
        "rate:connections/s,p50,p99,cpu:CPU µs/connection (min–max),cpuvs,ratevs,rss,errors" $(trio h10)
    stop_runs $(trio h10)
}

# 9: keep-alive GETs to an HTTPS target group (TLS from the proxy to the backend, which is
# nginx serving the backend's body over TLS on the load core).
group_https-targets() {
    mkdir -p "$TMP/results/tls-up" "$TMP/nginx-tls-backend"/{body,proxy,fastcgi,uwsgi,scgi}
    make_cert tls-up ec
    local plain_port=$BACKEND_PORT dir=$TMP/nginx-tls-backend pid run body
    body=$(curl -fsS "http://127.0.0.1:$plain_port/") || die "the backend did not answer"
    take_port
    local tls_port=$PORT
    {
        nginx_preamble | sed -e "s#$TMP/nginx/#$dir/#g"
        cat <<EOF
    server {
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $TMP/tls-up.cert.pem;
        ssl_certificate_key $TMP/tls-up.key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            default_type application/json;
            return 200 '$body';
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    chmod -R 777 "$dir"
    "${ON_LOAD_CORE[@]}" nginx -p "$dir" -c "$dir/nginx.conf" >"$TMP/tls-backend.out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$tls_port" "$pid" || die "the TLS backend did not start: $(cat "$TMP/tls-backend.out")"
    check_url "https://127.0.0.1:$tls_port/" -k
    # The trio forwards to the TLS backend.
    BACKEND_PORT=$tls_port
    TRIO_UPSTREAM_TLS=1
    start_trio tls-up 1 1
    BACKEND_PORT=$plain_port
    check_trio tls-up
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        for run in $(rotate "$ROUND" $(trio tls-up)); do
            measure_wrk tls-up "$run" "${URL_OF[$run]}/" 1 requests -t1 -c"$CONNECTIONS"
        done
    done
    print_table tls-up "9. Keep-alive GETs to an HTTPS target group (TLS to the backend; wrk -t1 -c$CONNECTIONS), one proxy thread pinned" \
        "rate:req/s,p50,p99,$CPU_REQ,cpuvs,ratevs,kernel,rss,errors" $(trio tls-up)
    echo
    echo "The backend is nginx serving the backend's body over TLS (ECDSA P-256) on core $LOAD_CORE. berth: rustls (ring) to the target; nginx: proxy_pass https with keepalive (proxy_ssl_session_reuse on by default); HAProxy: ssl verify none, http-reuse always."
    stop_runs $(trio tls-up)
    kill "$pid" 2>/dev/null || true
}

# make_cert NAME KIND: a self-signed certificate for localhost (KIND ec or rsa) in
# $TMP/NAME.{cert,key}.pem.
make_cert() {
    local name=$1 kind=$2 args
    if [[ $kind == ec ]]; then
        args=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
    else
        args=(-newkey rsa:2048)
    fi
    openssl req -x509 "${args[@]}" -nodes -keyout "$TMP/$name.key.pem" -out "$TMP/$name.cert.pem" \
        -days 2 -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        >/dev/null 2>&1 || die "openssl could not make the $kind test certificate"
    chmod 644 "$TMP/$name.key.pem" "$TMP/$name.cert.pem"
}

# 3: TLS handshakes (full and resumed) and keep-alive requests over TLS.
group_tls() {
    mkdir -p "$TMP/results"/{hs-ec,hs-rsa,hs-res,tls-ka}
    make_cert ec ec
    make_cert rsa rsa
    TRIO_TLS="$TMP/ec.cert.pem $TMP/ec.key.pem"
    start_trio tls-ec 1 1
    TRIO_TLS="$TMP/rsa.cert.pem $TMP/rsa.key.pem"
    start_trio tls-rsa 1 1
    check_trio tls-ec -k
    check_trio tls-rsa -k
    local run port
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        for run in $(rotate "$ROUND" $(trio tls-ec)); do
            port=${URL_OF[$run]##*:}
            measure_handshakes hs-ec "$run" "$port" none
        done
        for run in $(rotate "$ROUND" $(trio tls-rsa)); do
            port=${URL_OF[$run]##*:}
            measure_handshakes hs-rsa "$run" "$port" none
        done
        for run in $(rotate "$ROUND" $(trio tls-ec)); do
            port=${URL_OF[$run]##*:}
            measure_handshakes hs-res "$run" "$port" tickets
        done
        for run in $(rotate "$ROUND" $(trio tls-ec)); do
            measure_wrk tls-ka "$run" "${URL_OF[$run]}/" 1 requests -t1 -c"$CONNECTIONS"
        done
    done
    local hs="rate:handshakes/s,cpu:CPU µs/handshake (min–max),cpuvs,ratevs,resumed,rss,errors"
    print_table hs-ec "3a. Full TLS 1.3 handshakes, ECDSA P-256 certificate (berth-bench-handshake, $HANDSHAKE_CONCURRENCY at once, one request each, no resumption)" \
        "$hs" $(trio tls-ec)
    print_table hs-rsa "3b. Full TLS 1.3 handshakes, RSA 2048 certificate (as 3a)" "$hs" $(trio tls-rsa)
    print_table hs-res "3c. Resumed TLS 1.3 handshakes, ECDSA P-256 (as 3a, the client keeps the server's tickets)" \
        "$hs" $(trio tls-ec)
    print_table tls-ka "3d. Keep-alive requests over TLS, ECDSA P-256 (wrk -t1 -c$CONNECTIONS, no handshakes during the run)" \
        "rate:req/s,p50,p99,$CPU_REQ,cpuvs,ratevs,rss,errors,previous" $(trio tls-ec)
    echo
    echo "One proxy thread pinned to core $PROXY_CORE; the client on core $LOAD_CORE. berth: rustls (ring); nginx and HAProxy: $(openssl version | awk '{print $1, $2}'). Client: rustls, TLS 1.3 only, X25519. \"resumed\": share of handshakes the server resumed (nginx: session tickets and a shared cache; HAProxy: its defaults; berth: its defaults)."
    stop_runs $(trio tls-ec) $(trio tls-rsa)
}

# 4: HTTP/2 from the client (h2c, prior knowledge) to HTTP/1.1 targets.
group_h2() {
    mkdir -p "$TMP/results/h2"
    TRIO_H2C=1
    start_trio h2 1 1
    check_trio h2 --http2-prior-knowledge
    local run
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        for run in $(rotate "$ROUND" $(trio h2)); do
            measure_h2load h2 "$run" "${URL_OF[$run]}/" 1 -t1 -c"$H2_CONNECTIONS" -m100
        done
    done
    print_table h2 "4. HTTP/2 from the client (h2c prior knowledge, h2load -c$H2_CONNECTIONS -m100: 100 streams per connection), HTTP/1.1 to the backend, one proxy thread pinned" \
        "rate:req/s,mean,$CPU_REQ,cpuvs,ratevs,rss,errors" $(trio h2)
    stop_runs $(trio h2)
}

# 5: large bodies, both ways.
group_bodies() {
    local size run kind duration
    start_trio bodies 1 1
    check_trio bodies
    for size in 1048576 104857600; do
        printf 'wrk.method = "POST"\nwrk.body = string.rep("u", %d)\nwrk.headers["Content-Type"] = "application/octet-stream"\n' \
            "$size" >"$TMP/upload-$size.lua"
    done
    mkdir -p "$TMP/results"/{down-1m,down-100m,up-1m,up-100m}
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        for kind in down-1m down-100m up-1m up-100m; do
            size=1048576
            [[ $kind == *100m ]] && size=104857600
            # Only finished uploads count (wrk reports no bytes sent), so 100 MiB runs last
            # LARGE_DURATION for a few dozen of them at least.
            duration=$DURATION
            [[ $kind == *100m ]] && duration=$LARGE_DURATION
            for run in $(rotate "$ROUND" $(trio bodies)); do
                if [[ $kind == down-* ]]; then
                    DURATION=$duration measure_wrk "$kind" "$run" "${URL_OF[$run]}/bytes/$size" 1 \
                        "download $size" -t1 -c"$BODY_CONNECTIONS" --timeout 60s
                else
                    DURATION=$duration measure_wrk "$kind" "$run" "${URL_OF[$run]}/upload" 1 \
                        "upload $size" -t1 -c"$BODY_CONNECTIONS" --timeout 60s -s "$TMP/upload-$size.lua"
                fi
            done
        done
    done
    local cols="rate:MiB/s,p50,p99,cpu:CPU ms/GiB (min–max),cpuvs,ratevs,rss,errors"
    print_table down-1m "5a. 1 MiB responses (wrk -t1 -c$BODY_CONNECTIONS GET /bytes/1048576), one proxy thread pinned" "$cols" $(trio bodies)
    print_table down-100m "5b. 100 MiB responses (GET /bytes/104857600, runs of $LARGE_DURATION s)" "$cols" $(trio bodies)
    print_table up-1m "5c. 1 MiB uploads (POST, the backend reads and discards the body)" "$cols" $(trio bodies)
    print_table up-100m "5d. 100 MiB uploads (runs of $LARGE_DURATION s)" "$cols" $(trio bodies)
    echo
    echo "MiB/s: body bytes moved ÷ run time (downloads: bytes wrk read; uploads: requests × size). CPU ms/GiB: the proxy's CPU time per GiB of body. nginx streams both ways (proxy_request_buffering off, proxy_max_temp_file_size 0, client_body_buffer_size 64k)."
    stop_runs $(trio bodies)
}

# 6: many idle clients, with wrk running meanwhile.
group_idle() {
    mkdir -p "$TMP/results"/{idle-ka,idle-ws}
    local run runs
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        # Fresh proxies every round: memory freed by an earlier round is not reused.
        start_trio "idle-ka$ROUND" 1 1
        start_trio "idle-ws$ROUND" 1 1
        check_trio "idle-ka$ROUND"
        check_trio "idle-ws$ROUND"
        read -ra runs <<<"$(trio "idle-ka$ROUND") $(trio "idle-ws$ROUND")"
        for run in $(rotate "$ROUND" "${runs[@]}"); do
            if [[ $run == idle-ka* ]]; then
                measure_idle idle-ka "$run" "${URL_OF[$run]}/" keepalive "$IDLE_KEEPALIVE"
            else
                measure_idle idle-ws "$run" "${URL_OF[$run]}/" websocket "$IDLE_WEBSOCKETS"
            fi
            # Results are kept under the proxy's name, not the round's.
            cat "$TMP/results/${run%%[0-9]-*}/$run" >>"$TMP/results/${run%%[0-9]-*}/${run%%[0-9]-*}-${run##*-}"
        done
        stop_runs "${runs[@]}"
    done
    LABEL_OF[idle-ka-berth]=berth LABEL_OF[idle-ka-nginx]=nginx LABEL_OF[idle-ka-haproxy]=HAProxy
    LABEL_OF[idle-ws-berth]=berth LABEL_OF[idle-ws-nginx]=nginx LABEL_OF[idle-ws-haproxy]=HAProxy
    local cols="rss0,rss1,perconn,peropen,rate:req/s meanwhile,$CPU_REQ,ratevs,errors,dropped"
    print_table idle-ka "6a. $IDLE_KEEPALIVE idle keep-alive connections (one request each, then idle) held open, wrk -c$CONNECTIONS meanwhile; one proxy thread pinned" \
        "$cols" $(trio idle-ka)
    print_table idle-ws "6b. $IDLE_WEBSOCKETS idle WebSockets (upgraded, then idle) held open, wrk -c$CONNECTIONS meanwhile" \
        "$cols" $(trio idle-ws)
    echo
    echo "RSS before: after a warm-up, before the idle connections; RSS held: with them still open after the wrk run, $DURATION s after they opened (for nginx, master + worker). KiB per connection = (held − before) ÷ connections; \"at open\": the same right after the last one was served. Each connection comes from its own loopback address (127.2.x.y). \"dropped\": idle connections the proxy closed during the run (should be 0)."
}

# 7: many rules and targets.
group_rules() {
    mkdir -p "$TMP/results/rules"
    TRIO_BERTH_ARGS=(--rules 1)
    TRIO_RULES=1
    start_trio rules-1 1 1
    TRIO_BERTH_ARGS=(--rules "$RULES_MANY" --targets "$TARGETS_MANY")
    TRIO_RULES=$RULES_MANY
    TRIO_TARGETS=$TARGETS_MANY
    start_trio rules-rt 1 1
    take_port
    berth_start rules-r-berth "$PORT" 1 --threads 1 --rules "$RULES_MANY"
    URL_OF[rules-r-berth]="http://127.0.0.1:$PORT"
    take_port
    berth_start rules-t-berth "$PORT" 1 --threads 1 --rules 1 --targets "$TARGETS_MANY"
    URL_OF[rules-t-berth]="http://127.0.0.1:$PORT"
    # The same targets checked every 300 s (ALB's longest interval) instead of 5: what the
    # checks themselves add.
    take_port
    berth_start rules-tq-berth "$PORT" 1 --threads 1 --rules 1 --targets "$TARGETS_MANY" --health-interval 300
    URL_OF[rules-tq-berth]="http://127.0.0.1:$PORT"
    LABEL_OF[rules-1-berth]="berth, 1 rule, 1 target"
    LABEL_OF[rules-r-berth]="berth, $RULES_MANY rules, 1 target"
    LABEL_OF[rules-t-berth]="berth, 1 rule, $TARGETS_MANY targets"
    LABEL_OF[rules-tq-berth]="berth, 1 rule, $TARGETS_MANY targets checked every 300 s"
    LABEL_OF[rules-rt-berth]="berth, $RULES_MANY rules, $TARGETS_MANY targets"
    LABEL_OF[rules-1-nginx]="nginx, 1 rule, 1 target"
    LABEL_OF[rules-rt-nginx]="nginx, $RULES_MANY rules, $TARGETS_MANY targets"
    LABEL_OF[rules-1-haproxy]="HAProxy, 1 rule, 1 target"
    LABEL_OF[rules-rt-haproxy]="HAProxy, $RULES_MANY rules, $TARGETS_MANY targets"
    local runs=(rules-1-berth rules-r-berth rules-t-berth rules-tq-berth rules-rt-berth rules-1-nginx rules-rt-nginx
        rules-1-haproxy rules-rt-haproxy) run
    for run in "${runs[@]}"; do
        check_url "${URL_OF[$run]}/"
    done
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        for run in $(rotate "$ROUND" "${runs[@]}"); do
            measure_wrk rules "$run" "${URL_OF[$run]}/" 1 requests -t1 -c"$CONNECTIONS"
        done
    done
    print_table rules "7. $RULES_MANY non-matching path rules and $TARGETS_MANY targets against 1 rule and 1 target (wrk -t1 -c$CONNECTIONS), one proxy thread pinned" \
        "rate:req/s,p50,p99,$CPU_REQ,cpuvs,kernel,rss,errors,previous" "${runs[@]}"
    added() {
        awk -v a="$(median_of "$TMP/results/rules/$1" 5)" -v b="$(median_of "$TMP/results/rules/$2" 5)" \
            'BEGIN {printf "%+.2f µs", a - b}'
    }
    echo
    echo "Added CPU per request, $RULES_MANY rules + $TARGETS_MANY targets against 1 + 1: berth $(added rules-rt-berth rules-1-berth) (goal < 1 µs; rules alone $(added rules-r-berth rules-1-berth), targets alone $(added rules-t-berth rules-1-berth), targets checked every 300 s instead of 5 $(added rules-tq-berth rules-1-berth)), nginx $(added rules-rt-nginx rules-1-nginx), HAProxy $(added rules-rt-haproxy rules-1-haproxy). Targets are 127.0.x.y at the backend's port (the backend listens on each); round robin everywhere. berth health-checks every target every 5 s (its CPU is in berth's figures); nginx and HAProxy do no health checks. nginx's rules are prefix locations, HAProxy's are path_beg use_backend lines. \"berth before\": berth's rows of the same table in benches/README.md, and the \"1 rule\" and \"100 rules\" rows of its earlier tables."
    stop_runs "${runs[@]}"
}
