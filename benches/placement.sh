#!/usr/bin/env bash
# berth placement: how long the scheduler takes to place 10,000 tasks of one service on
# 1,000 container instances (three zones, a tenth of them reserved for batch work) with
# a memberOf constraint, spread over the zone attribute and binpack by memory, through
# the service reconciler's own placement path. No server, no runtime: placement is a
# pure function of the instances, the tasks and the service.
#
# Usage: benches/placement.sh                 (release build; about a minute to build)
#        TASKS=20000 INSTANCES=2000 ROUNDS=9 benches/placement.sh
#        PROFILE=debug benches/placement.sh   (a debug build, far slower: not the figure)
# Prints one markdown table (a row per run) and the median.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TASKS=${TASKS:-10000}
INSTANCES=${INSTANCES:-1000}
ROUNDS=${ROUNDS:-5}
PROFILE=${PROFILE:-release}

case "$PROFILE" in
release) flags=(--release) ;;
debug) flags=() ;;
*) echo "PROFILE must be release or debug, got $PROFILE" >&2; exit 2 ;;
esac

echo "building berth-bench-placement ($PROFILE)..." >&2
(cd "$ROOT" && cargo build "${flags[@]}" --quiet -p berth-benches --bin berth-bench-placement)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/berth-bench-placement

echo "### berth placement ($(date -u +%Y-%m-%d), $TASKS tasks on $INSTANCES instances, $PROFILE build)"
echo
"$BIN" --tasks "$TASKS" --instances "$INSTANCES" --rounds "$ROUNDS"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)."
