#!/usr/bin/env bash
# berth autoscaling: how fast a sustained load step turns into a new task serving, and how
# fast the service shrinks again once the load stops, next to ECS's and Kubernetes HPA's
# documented loops.
#
# One `berth server` on this machine, tasks as local processes (the process runtime), the
# quickstart service at 1 task behind its load balancer, and a target tracking policy on
# ALBRequestCountPerTarget (600 requests per target per minute, min 1, max 4) with berth's
# default evaluation windows (5 s of data to scale out, 60 s to scale in), a 15 s
# scale-out cooldown and a 10 s scale-in cooldown. The load step is wrk with 8
# connections on loopback (far above the target); a curl probe 10 times a second sees
# which task answers through the listener.
#
# Timeline, in seconds from the load step (server clock, same machine):
#   decision   the first Successful scaling activity's startTime
#   RUNNING    the earliest startedAt of a task started after the step
#   serving    the first response through the listener from a task started after the step
#              (a new target gets traffic only once it passed its health checks: the
#              quickstart checks every 5 s, 2 to turn healthy)
# and from the load stopping: the first scale-in decision, and scale-in complete (desired
# count 1, one task, one target).
#
# Usage: benches/autoscale.sh          (uses target/debug/berth; BERTH=path for another build)
#        RUNTIME=docker benches/autoscale.sh   (tasks as containers of the local image
#        berth-whoami:latest: build it first with `berth image build-demo`)
# Needs: wrk, curl, jq (and the Docker engine with RUNTIME=docker).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BERTH=${BERTH:-$ROOT/target/debug/berth}
RUNTIME=${RUNTIME:-process}
[[ -x "$BERTH" ]] || { echo "build berth first: cargo build -p berth -p berth-whoami" >&2; exit 1; }
for tool in wrk curl jq; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

TMP=$(mktemp -d)
SERVER_PID=
WRK_PID=
cleanup() {
    [[ -n "$WRK_PID" ]] && kill "$WRK_PID" 2>/dev/null || true
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
    sleep 1
    # The containers this server's instance started.
    if [[ "$RUNTIME" == docker && -s "$TMP/instance-id" ]]; then
        ids=$(docker ps -aq --filter "label=berth.container-instance=$(cat "$TMP/instance-id")")
        [[ -n "$ids" ]] && docker rm -f $ids >/dev/null 2>&1 || true
    fi
    # The task processes carry the data dir in their environment.
    {
        for p in /proc/[0-9]*; do
            if tr '\0' '\n' <"$p/environ" | grep -qx "BERTH_DATA_DIR=$TMP"; then
                kill -9 "${p#/proc/}" || true
            fi
        done
    } 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Polls `$1` (a shell condition) every 0.1 s for at most $2 seconds.
wait_for() {
    local what=$1 limit=$2 start
    start=$(date +%s)
    until eval "$what"; do
        if (($(date +%s) - start > limit)); then
            echo "timed out after ${limit}s: $what" >&2
            tail -n 30 "$TMP/server.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

sed -e 's/      - port: 8080/      - port: 0/' -e 's/desiredCount: 3/desiredCount: 1/' \
    "$ROOT/configs/quickstart.yaml" >"$TMP/quickstart.yaml"
cat >"$TMP/autoscaling.yaml" <<'YAML'
scalableTargets:
  - resourceId: service/default/whoami
    minCapacity: 1
    maxCapacity: 4
scalingPolicies:
  - policyName: requests
    resourceId: service/default/whoami
    policyType: TargetTrackingScaling
    targetTrackingScalingPolicyConfiguration:
      targetValue: 600
      predefinedMetricSpecification:
        predefinedMetricType: ALBRequestCountPerTarget
        resourceLabel: app/web/targetgroup/whoami
      scaleOutCooldown: 15
      scaleInCooldown: 10
YAML

BERTH_DATA_DIR=$TMP "$BERTH" server --api-addr 127.0.0.1:0 --insecure-loopback --listen-ip 127.0.0.1 \
    --runtime "$RUNTIME" --apply "$TMP/quickstart.yaml" >/dev/null 2>"$TMP/server.log" &
SERVER_PID=$!
wait_for '[[ -s $TMP/api.addr ]]' 30
API=$(cat "$TMP/api.addr")
export BERTH_ENDPOINT=$API
api() { curl -sf "$API$1"; }
healthy() { api /v1/target-groups/whoami/targets | jq '[.[] | select(.targetHealth.state == "healthy")] | length'; }
wait_for '[[ "$(healthy)" == 1 ]]' 60
PORT=$(api /v1/load-balancers/web | jq -r '.listeners[0].boundPort')
FIRST_TASK=$(curl -sfi "http://127.0.0.1:$PORT/" | awk -F': ' 'tolower($1) == "x-berth-task" { print $2 }' | tr -d '\r')
"$BERTH" apply -f "$TMP/autoscaling.yaml" >/dev/null
# Let the sampler take its baseline and the autoscaler see the idle service.
wait_for '[[ "$(api /v1/clusters/default/services/whoami/scaling-activities | jq length)" -ge 1 ]]' 30

STEP=$(now)
wrk -c 8 -t 1 -d 300s "http://127.0.0.1:$PORT/" >"$TMP/wrk.txt" 2>&1 &
WRK_PID=$!
SERVING=
until [[ -n "$SERVING" ]]; do
    task=$(curl -sfi "http://127.0.0.1:$PORT/" | awk -F': ' 'tolower($1) == "x-berth-task" { print $2 }' | tr -d '\r' || true)
    if [[ -n "$task" && "$task" != "$FIRST_TASK" ]]; then SERVING=$(now); fi
    if (($(date +%s) - ${STEP%.*} > 120)); then echo "no new task served within 120 s" >&2; exit 1; fi
    sleep 0.1
done
DECISION=$(api /v1/clusters/default/services/whoami/scaling-activities |
    jq '[.[] | select(.statusCode == "Successful")] | min_by(.startTime) | .startTime')
RUNNING=$(api "/v1/tasks?service=whoami" |
    jq --argjson step "$STEP" '[.[] | select(.startedAt != null and .startedAt > $step) | .startedAt] | min')
wait_for '[[ "$(healthy)" == 4 ]]' 60

kill "$WRK_PID"
wait "$WRK_PID" 2>/dev/null || true
WRK_PID=
STOP=$(now)
settled() {
    [[ "$(api /v1/clusters/default/services/whoami | jq .desiredCount)" == 1 &&
        "$(api '/v1/tasks?service=whoami&desiredStatus=RUNNING' | jq length)" == 1 &&
        "$(api /v1/target-groups/whoami/targets | jq length)" == 1 ]]
}
wait_for settled 240
SCALED_IN=$(now)
IN_DECISION=$(api /v1/clusters/default/services/whoami/scaling-activities |
    jq --argjson stop "$STOP" '[.[] | select(.statusCode == "Successful" and .startTime > $stop)] | min_by(.startTime) | .startTime')

printf '\nberth autoscaling timeline (%s runtime, %s build; quickstart, ALBRequestCountPerTarget 600/min, 1 -> 4 -> 1)\n\n' \
    "$RUNTIME" "$(basename "$(dirname "$BERTH")")"
printf '| from the load step | berth | ECS target tracking (documented) | Kubernetes HPA (documented) |\n'
printf '|---|---|---|---|\n'
printf '| scaling decision | %s s | 3 x 60 s datapoints above target (AlarmHigh): about 180 s or more | next 15 s sync: up to 15 s |\n' "$(elapsed "$STEP" "$DECISION")"
printf '| new task RUNNING | %s s | decision + task start (placement, image pull) | decision + pod start |\n' "$(elapsed "$STEP" "$RUNNING")"
printf '| new task healthy and serving through the listener | %s s | + ALB health checks (default 30 s x 5 healthy) | + readiness probe |\n' "$(elapsed "$STEP" "$SERVING")"
printf '| **from the load stopping** | | | |\n'
printf '| first scale-in decision | %s s | 15 x 60 s datapoints below 0.9 x target (AlarmLow): about 900 s | 300 s stabilization window |\n' "$(elapsed "$STOP" "$IN_DECISION")"
printf '| scale-in complete (1 task) | %s s | + scale-in cooldown (300 s) per further step, + deregistration delay (300 s) | + 15 s per step after the window |\n' "$(elapsed "$STOP" "$SCALED_IN")"
