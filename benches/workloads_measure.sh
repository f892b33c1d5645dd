# Sourced by benches/workloads.sh, not run: one measured run of each load tool against one
# proxy (wrk, h2load, berth-bench-handshake, berth-bench-idle with wrk alongside), and the
# markdown table printed from the rounds' results. It starts no proxy.
#
# Every measured run appends one line to $TMP/results/TABLE/RUN with these columns:
#   1 rate (req/s, connections/s, handshakes/s, MiB/s)   2 p50 or mean latency (µs)
#   3 p99 (µs)   4 the proxy's RSS at the end (KiB)   5 the proxy's CPU per unit (µs, or
#   ms per GiB)   6 errors   7 resumed handshakes (%), or "-"
# The idle runs use their own columns (see measure_idle).
#
# Expects: TMP, CLK_TCK, DURATION, WARMUP, PID_OF, LABEL_OF, PREVIOUS, ON_LOAD_CORE, die,
# log, and common.sh's cpu_ticks, rss_kib, to_us, proc_tree, median_of, range_of.

# load_prefix PIN: the command prefix that pins a load tool to the load core when PIN is 1.
load_prefix() {
    if (($1)); then
        printf '%s\n' "${ON_LOAD_CORE[@]}"
    fi
}

# proxy_pids RUN: the proxy's processes (for nginx: master and workers), one per line.
proxy_pids() {
    proc_tree "${PID_OF[$1]}"
}

# cpu_us TICKS UNITS: CPU microseconds per unit.
cpu_us() {
    awk -v d="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN {if (n > 0) printf "%.2f", d * 1000000 / hz / n; else print "-"}'
}

# core_use TICKS: how much of one core the proxy used during the run, in %.
core_use() {
    awk -v d="$1" -v hz="$CLK_TCK" -v t="$DURATION" 'BEGIN {printf "%.0f%%", d * 100 / hz / t}'
}

# wrk_bytes VALUE UNIT: wrk's "1.23GB" style byte count in bytes.
wrk_bytes() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        m = 1
        if (u == "KB") m = 1024; else if (u == "MB") m = 1048576
        else if (u == "GB") m = 1073741824; else if (u == "TB") m = 1099511627776
        printf "%.0f", n * m
    }'
}

# measure_wrk TABLE RUN URL PIN MODE WRK_ARGS...: a warm-up and a measured wrk run against
# RUN's proxy. MODE: "requests" (rate = req/s, CPU per request), "download SIZE" or
# "upload SIZE" (rate = MiB/s, CPU in ms per GiB; SIZE in bytes).
measure_wrk() {
    local table=$1 run=$2 url=$3 pin=$4 mode=$5
    shift 5
    local prefix pids out before after sys_before sys_after requests rps p50 p99 rss errors cpu rate read bytes kernel
    mapfile -t prefix < <(load_prefix "$pin")
    mapfile -t pids < <(proxy_pids "$run")
    if ((WARMUP > 0)); then
        "${prefix[@]}" wrk "$@" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
    fi
    out="$TMP/results/$table/$run.wrk.$ROUND"
    before=$(cpu_ticks "${pids[@]}")
    sys_before=$(sys_ticks "${pids[@]}")
    "${prefix[@]}" wrk "$@" -d"${DURATION}s" --latency "$url" >"$out" 2>&1 ||
        die "wrk failed against $run: $(cat "$out")"
    after=$(cpu_ticks "${pids[@]}")
    sys_after=$(sys_ticks "${pids[@]}")
    # The kernel's share of the proxy's CPU during the run, in %.
    kernel=$(awk -v s=$((sys_after - sys_before)) -v t=$((after - before)) \
        'BEGIN {if (t > 0) printf "%.0f", s * 100 / t; else print "-"}')
    rss=$(rss_kib "${pids[@]}")
    requests=$(awk '/ requests in / {print $1}' "$out")
    read=$(awk '/ requests in / {sub(/,$/, "", $4); print $5}' "$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    [[ -n $requests && -n $rps ]] || die "could not read wrk's output for $run: $(cat "$out")"
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
    errors=$(awk '/Non-2xx or 3xx responses:/ {e += $NF}
        /Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10}
        END {print e + 0}' "$out")
    case $mode in
    requests)
        rate=$rps
        cpu=$(cpu_us $((after - before)) "$requests")
        ;;
    download* | upload*)
        if [[ $mode == download* ]]; then
            bytes=$(wrk_bytes "$read")
        else
            bytes=$(awk -v n="$requests" -v s="${mode#upload }" 'BEGIN {printf "%.0f", n * s}')
        fi
        rate=$(awk -v b="$bytes" -v t="$DURATION" 'BEGIN {printf "%.1f", b / 1048576 / t}')
        # ms of CPU per GiB moved.
        cpu=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v b="$bytes" \
            'BEGIN {if (b > 0) printf "%.1f", d * 1000 / hz / (b / 1073741824); else print "-"}')
        ;;
    *) die "measure_wrk: unknown mode '$mode'" ;;
    esac
    echo "$rate $p50 $p99 $rss $cpu $errors - $kernel" >>"$TMP/results/$table/$run"
    log "  round $ROUND $table ${LABEL_OF[$run]}: rate $rate, p50 $p50 µs, p99 $p99 µs, CPU $cpu ($kernel % kernel), core use $(core_use $((after - before))), errors $errors"
}

# measure_h2load TABLE RUN URL PIN H2LOAD_ARGS...: a warm-up and a measured h2load run.
measure_h2load() {
    local table=$1 run=$2 url=$3 pin=$4
    shift 4
    local prefix pids out before after done_ok failed rps mean rss
    mapfile -t prefix < <(load_prefix "$pin")
    mapfile -t pids < <(proxy_pids "$run")
    if ((WARMUP > 0)); then
        "${prefix[@]}" h2load "$@" -D "$WARMUP" "$url" >/dev/null 2>&1 || true
    fi
    out="$TMP/results/$table/$run.h2load.$ROUND"
    before=$(cpu_ticks "${pids[@]}")
    "${prefix[@]}" h2load "$@" -D "$DURATION" "$url" >"$out" 2>&1 ||
        die "h2load failed against $run: $(tail -5 "$out")"
    after=$(cpu_ticks "${pids[@]}")
    rss=$(rss_kib "${pids[@]}")
    rps=$(awk '/^finished in/ {gsub(/,/, ""); print $4}' "$out")
    done_ok=$(awk '/^requests:/ {print $8}' "$out")
    failed=$(awk '/^requests:/ {print $10 + $12 + $14}' "$out")
    mean=$(to_us "$(awk '/^time for request:/ {print $6}' "$out")")
    [[ -n $rps && -n $done_ok ]] || die "could not read h2load's output for $run: $(cat "$out")"
    ((done_ok > 0)) || die "h2load: no request succeeded against $run: $(grep -i 'requests:\|status codes' "$out")"
    echo "$rps $mean - $rss $(cpu_us $((after - before)) "$done_ok") $failed -" >>"$TMP/results/$table/$run"
    log "  round $ROUND ${LABEL_OF[$run]}: $rps req/s, mean $mean µs, CPU/req $(cpu_us $((after - before)) "$done_ok") µs, core use $(core_use $((after - before))), failed $failed"
}

# measure_handshakes TABLE RUN PORT RESUME: berth-bench-handshake (full or resumed
# handshakes, one request each) on the load core against RUN's HTTPS port.
measure_handshakes() {
    local table=$1 run=$2 port=$3 resume=$4 pids out before after n secs resumed errors rate
    mapfile -t pids < <(proxy_pids "$run")
    local tool=("${ON_LOAD_CORE[@]}" "$BIN/berth-bench-handshake" --connect "127.0.0.1:$port"
        --concurrency "$HANDSHAKE_CONCURRENCY" --resume "$resume")
    if ((WARMUP > 0)); then
        "${tool[@]}" --duration "$WARMUP" >/dev/null 2>&1 || true
    fi
    out="$TMP/results/$table/$run.hs.$ROUND"
    before=$(cpu_ticks "${pids[@]}")
    "${tool[@]}" --duration "$DURATION" >"$out" 2>"$out.err" ||
        die "berth-bench-handshake failed against $run: $(cat "$out.err")"
    after=$(cpu_ticks "${pids[@]}")
    read -r n secs resumed errors < <(sed 's/[a-z]*=//g' "$out")
    ((n > 0)) || die "no handshake completed against $run: $(cat "$out.err")"
    rate=$(awk -v n="$n" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
    echo "$rate - - $(rss_kib "${pids[@]}") $(cpu_us $((after - before)) "$n") $errors $((resumed * 100 / n))" \
        >>"$TMP/results/$table/$run"
    log "  round $ROUND ${LABEL_OF[$run]}: $rate handshakes/s, CPU/handshake $(cpu_us $((after - before)) "$n") µs, resumed $resumed of $n, core use $(core_use $((after - before))), errors $errors"
}

# measure_idle TABLE RUN URL MODE COUNT: RSS before, COUNT idle connections opened by
# berth-bench-idle (MODE keepalive or websocket), RSS with them held, a wrk run meanwhile,
# then the connections closed. Appends "active_req/s rss_before_kib rss_held_kib
# kib_per_connection active_cpu_us_per_req wrk_errors dropped".
measure_idle() {
    local table=$1 run=$2 url=$3 mode=$4 count=$5 pids idle_pid rss0 rss_open rss1 per per_open out before after requests rps errors dropped
    local port=${url##*:}
    port=${port%%/*}
    mapfile -t pids < <(proxy_pids "$run")
    if ((WARMUP > 0)); then
        "${ON_LOAD_CORE[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
    fi
    rss0=$(rss_kib "${pids[@]}")
    out="$TMP/results/$table/$run.idle.$ROUND"
    "${ON_LOAD_CORE[@]}" "$BIN/berth-bench-idle" --connect "127.0.0.1:$port" --mode "$mode" \
        --connections "$count" >"$out" 2>"$out.err" &
    idle_pid=$!
    PIDS+=("$idle_pid")
    wait_ready_line "$out" "$idle_pid" || die "berth-bench-idle failed against $run: $(cat "$out.err")"
    mapfile -t pids < <(proxy_pids "$run")
    rss_open=$(rss_kib "${pids[@]}")
    before=$(cpu_ticks "${pids[@]}")
    "${ON_LOAD_CORE[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$url" >"$out.wrk" 2>&1 ||
        die "wrk failed against $run: $(cat "$out.wrk")"
    after=$(cpu_ticks "${pids[@]}")
    # Held: still open after the wrk run, DURATION seconds after they opened (berth parks
    # a keep-alive connection quiet for a second).
    rss1=$(rss_kib "${pids[@]}")
    kill "$idle_pid"
    wait "$idle_pid" 2>/dev/null || true
    dropped=$(awk '$1 == "dropped" {print $2}' "$out")
    requests=$(awk '/ requests in / {print $1}' "$out.wrk")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out.wrk")
    errors=$(awk '/Non-2xx or 3xx responses:/ {e += $NF}
        /Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10}
        END {print e + 0}' "$out.wrk")
    per=$(awk -v a="$rss0" -v b="$rss1" -v n="$count" 'BEGIN {printf "%.2f", (b - a) / n}')
    per_open=$(awk -v a="$rss0" -v b="$rss_open" -v n="$count" 'BEGIN {printf "%.2f", (b - a) / n}')
    echo "$rps $rss0 $rss1 $per $(cpu_us $((after - before)) "$requests") $errors ${dropped:--} $per_open" \
        >>"$TMP/results/$table/$run"
    log "  round $ROUND ${LABEL_OF[$run]}: $count idle $mode: RSS $rss0 -> $rss_open at open -> $rss1 KiB held ($per KiB each), wrk meanwhile $rps req/s, dropped ${dropped:-?}"
}

# ---- tables ----------------------------------------------------------------------------

fmt_ms() { [[ $1 == - ]] && echo "-" || awk -v u="$1" 'BEGIN {printf "%.2f ms", u / 1000}'; }
fmt_mib() { [[ $1 == - ]] && echo "-" || awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
ratio() { [[ $1 == - || $2 == - ]] && echo "-" || awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "-"}'; }

# best_peer TABLE COLUMN LOWER RUN...: among the runs that are not berth's, the lowest
# (LOWER=1) or highest median of COLUMN.
best_peer() {
    local table=$1 col=$2 lower=$3 run
    shift 3
    for run in "$@"; do
        [[ $run == *berth* ]] && continue
        median_of "$TMP/results/$table/$run" "$col"
    done | awk -v lower="$lower" '$1 != "-" {if (!seen || (lower ? $1 < b : $1 > b)) b = $1; seen = 1}
        END {if (seen) print b; else print "-"}'
}

# readme_figures NUM LABEL: row LABEL of the table for workload NUM ("2", "3a") in
# benches/README.md, the figures this script printed there last time: its CPU and its
# rate (for the idle groups, its KiB per connection), as "16.7 µs/req, 55436 req/s";
# nothing when the README has no such row.
readme_figures() {
    awk -v num="$1" -v label="$2" '
        function trim(s) { gsub(/^ +| +$/, "", s); return s }
        $0 ~ ("^#+ " num "\\. ") { on = 1; next }
        on && /^#/ { exit }
        on && /^\| run \|/ { nh = split($0, h, "|"); for (i = 1; i <= nh; i++) h[i] = trim(h[i]); next }
        on && nh && index($0, "| " label " |") == 1 {
            split($0, c, "|")
            for (i = 3; i < nh; i++) {
                v = trim(c[i]); sub(/ .*/, "", v)
                u = h[i]; sub(/ \(min–max\)$/, "", u)
                if (u ~ /^CPU / && u !~ / vs /) { sub(/^CPU /, "", u); cpu = v " " u }
                else if (u == "KiB per connection") main = v " KiB per connection"
            }
            if (main == "") main = trim(c[3]) " " h[3]
            print (cpu == "" ? main : cpu ", " main)
            exit
        }' "$ROOT/benches/README.md"
}

# print_table TABLE TITLE COLUMNS RUN...: one markdown table. COLUMNS, comma-separated,
# from: rate:<title> p50 p99 mean resumed rss cpu:<title> cpuvs ratevs errors previous,
# kernel (wrk runs), and for idle runs rss0 rss1 perconn peropen dropped. Every table
# ends with "previous": berth's rows show their figures from the README's same table
# (no workload may get worse), and any earlier figures PREVIOUS holds for them.
print_table() {
    local table=$1 title=$2 columns=$3 run col f cell best_cpu best_rate readme header="|" rule="|"
    local -a cols
    shift 3
    [[ ,$columns, == *,previous,* ]] || columns+=",previous"
    IFS=, read -ra cols <<<"$columns"
    best_cpu=$(best_peer "$table" 5 1 "$@")
    best_rate=$(best_peer "$table" 1 0 "$@")
    for col in "${cols[@]}"; do
        case $col in
        rate:* | cpu:*) header+=" ${col#*:} |" ;;
        p50) header+=" p50 |" ;;
        p99) header+=" p99 |" ;;
        mean) header+=" mean latency |" ;;
        resumed) header+=" resumed |" ;;
        rss) header+=" proxy RSS |" ;;
        cpuvs) header+=" CPU vs best peer |" ;;
        ratevs) header+=" rate vs best peer |" ;;
        errors) header+=" errors |" ;;
        previous) header+=" berth before (README) |" ;;
        rss0) header+=" RSS before |" ;;
        rss1) header+=" RSS held |" ;;
        perconn) header+=" KiB per connection (min–max) |" ;;
        peropen) header+=" KiB per connection at open |" ;;
        kernel) header+=" kernel share of CPU |" ;;
        dropped) header+=" dropped |" ;;
        *) die "print_table: unknown column $col" ;;
        esac
        [[ $col == previous ]] && rule+="---|" || rule+="---:|"
    done
    echo
    echo "### $title"
    echo
    echo "| run $header"
    echo "|---$rule"
    for run in "$@"; do
        f="$TMP/results/$table/$run"
        printf '| %s |' "${LABEL_OF[$run]}"
        for col in "${cols[@]}"; do
            case $col in
            rate:*) cell=$(awk -v v="$(median_of "$f" 1)" 'BEGIN {if (v == "-") print "-"; else if (v < 100) printf "%.1f", v; else printf "%.0f", v}') ;;
            p50 | mean) cell=$(fmt_ms "$(median_of "$f" 2)") ;;
            p99) cell=$(fmt_ms "$(median_of "$f" 3)") ;;
            resumed) cell="$(median_of "$f" 7) %" ;;
            rss) cell=$(fmt_mib "$(median_of "$f" 4)") ;;
            cpu:*) cell=$(awk -v v="$(median_of "$f" 5)" 'BEGIN {if (v == "-") print "-"; else printf "%.1f", v}')$(range_of "$f" 5 "%.1f") ;;
            cpuvs) cell=$(ratio "$(median_of "$f" 5)" "$best_cpu") ;;
            ratevs) cell=$(ratio "$(median_of "$f" 1)" "$best_rate") ;;
            errors) cell=$(awk '{e += $6} END {print e + 0}' "$f") ;;
            previous)
                cell=${PREVIOUS[$table/$run]:-}
                if [[ ${LABEL_OF[$run]} == berth* ]]; then
                    readme=$(readme_figures "${title%%. *}" "${LABEL_OF[$run]}")
                    [[ -z $readme ]] || cell="$readme${cell:+; earlier: $cell}"
                fi
                ;;
            rss0) cell=$(fmt_mib "$(median_of "$f" 2)") ;;
            rss1) cell=$(fmt_mib "$(median_of "$f" 3)") ;;
            perconn) cell=$(awk -v v="$(median_of "$f" 4)" 'BEGIN {printf "%.2f", v}')$(range_of "$f" 4 "%.2f") ;;
            dropped) cell=$(awk '$7 != "-" {d += $7} END {print d + 0}' "$f") ;;
            peropen) cell=$(awk -v v="$(median_of "$f" 8)" 'BEGIN {printf "%.2f", v}') ;;
            kernel) cell="$(median_of "$f" 8) %" ;;
            esac
            printf ' %s |' "$cell"
        done
        echo
    done
}
