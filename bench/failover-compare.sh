#!/usr/bin/env bash
# Failover benchmark, MagFlock vs Patroni 3.0.2 + etcd on this machine, loopback only.
#
#   bash bench/failover-compare.sh patroni   # Debian patroni + etcd-server via the anchor scripts
#   bash bench/failover-compare.sh magflock  # bench/failover-magflock.mjs (in-process kernel)
#   bash bench/failover-compare.sh report    # docs/benchmarks/replication.md from both result sets
#   bash bench/failover-compare.sh all       # the three in order (never concurrently: 2 vCPUs)
#
# Patroni side: the anchor scripts in ../shared/anchors/patroni (beside the repository) (writer every 50 ms, kill -9
# of the leader's agent + postmaster + children, rejoin, patronictl switchover), unchanged,
# results in $OUT/patroni. Install once: bash ../shared/anchors/patroni/00-install.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ANCHOR=${ANCHOR:-$ROOT/../shared/anchors/patroni}
OUT=${BENCH_OUT:-/tmp/mf-bench-failover}
N=${BENCH_RUNS:-5}
mkdir -p "$OUT"

patroni() {
  export HA_RESULTS="$OUT/patroni"
  rm -rf "$HA_RESULTS"; mkdir -p "$HA_RESULTS"
  trap 'bash "$ANCHOR/90-down.sh" >/dev/null 2>&1 || true' EXIT
  for P in tuned default; do
    bash "$ANCHOR/90-down.sh" || true
    bash "$ANCHOR/10-up.sh" "$P" false
    for t in $(seq 1 "$N"); do bash "$ANCHOR/20-failover.sh" "$P" false "$t"; done
    if [ "$P" = tuned ]; then
      for t in $(seq 1 3); do bash "$ANCHOR/30-switchover.sh" "$P" false "$t"; done
      for t in $(seq 1 3); do STALL_S=2 bash "$ANCHOR/20-failover.sh" "$P" false "$t"; done
    fi
    bash "$ANCHOR/90-down.sh"
  done
  bash "$ANCHOR/10-up.sh" tuned true
  for t in $(seq 1 3); do STALL_S=2 bash "$ANCHOR/20-failover.sh" tuned true "$t"; done
  bash "$ANCHOR/90-down.sh"
  trap - EXIT
}

magflock() {
  local dist=/tmp/mf-dist-h6
  (cd "$ROOT" && npx tsc -p tsconfig.build.json --outDir "$dist")
  ln -sfn "$ROOT/node_modules" "$dist/node_modules"
  echo '{"type":"module"}' > "$dist/package.json"
  MAGFLOCK_DIST=$dist BENCH_ONLY="${BENCH_ONLY:-}" BENCH_OUT="$OUT" BENCH_RUNS="$N" "$ROOT/node_modules/.bin/node" "$HERE/failover-magflock.mjs"
}

report() {
  "$ROOT/node_modules/.bin/node" "$HERE/failover-report.mjs" "$OUT" "$ROOT/docs/benchmarks/replication.md"
}

case "${1:-all}" in
  patroni) patroni ;;
  magflock) magflock ;;
  report) report ;;
  all) patroni; magflock; report ;;
  *) echo "usage: $0 patroni|magflock|report|all" >&2; exit 2 ;;
esac
