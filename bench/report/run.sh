#!/usr/bin/env bash
# Runs the benchmarks behind docs/bench.md and regenerates it: tables (medians, min-max, ratios
# against each peer), the machine, and SVG plots drawn with gnuplot. See bench/README.md
# ("The report").
#
# Usage: bench/report/run.sh [SECTION...]      SECTION: all (default), micro, echo, idle, flags,
#                                              report (only redraw docs/bench.md from the data)
#
# Each section runs its programs and keeps its raw results in docs/bench/ (micro/*.json|txt,
# echo.txt, idle.txt, flags.txt, and machine_<section>.txt with the load average before and
# after); then bench/report/make_report.py turns everything in docs/bench/ into CSV files, the
# SVG plots and docs/bench.md. Running one section leaves the other sections' data as it was.
#
# Environment:
#   BUILD_DIR=build     the plain build holding the programs (`make bench` builds them)
#   BENCH_QUICK=1       a short run (about 4 minutes): fewer runs and sizes, for a try-out
#   IDLE_RUNS=3         runs per idle-task configuration (the median is reported)
#   FLAGS_RUNS=3        runs of `flags --mode all`
#   Variables of bench/run_bench.sh and bench/echo/run_echo.sh pass through (ECHO_SIZES, ...).
#
# Needs no network. Go (golang-go) is optional: without it the report says "Go: not installed".

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-build}
[[ "$build" = /* ]] || build="$src/$build"
data="$src/docs/bench"
quick=${BENCH_QUICK:-0}
mkdir -p "$data"

sections=("$@")
((${#sections[@]})) || sections=(all)
if [[ " ${sections[*]} " == *" all "* ]]; then sections=(micro idle flags echo report); fi

machine() {  # machine_<section>.txt: when, and the load average before/after
  echo "$2 $(date -u +%FT%TZ) $(cut -d' ' -f1-4 /proc/loadavg)" >>"$data/machine_$1.txt"
}

run_micro() {
  rm -rf "$data/micro" "$data/machine_micro.txt"
  machine micro before
  local runs=5
  [[ "$quick" == 1 ]] && runs=3
  ECHO=0 SKYNET_RUNS=${SKYNET_RUNS:-$runs} BENCH_DATA="$data/micro" \
    bash "$src/bench/run_bench.sh" "$build" || echo "run.sh: run_bench.sh failed" >&2
  machine micro after
}

run_echo() {
  rm -f "$data/echo.txt" "$data/machine_echo.txt"
  machine echo before
  echo "pin ${ECHO_PIN:-1}" >>"$data/machine_echo.txt"  # run_echo.sh's default: pinned
  local env=()
  [[ "$quick" == 1 ]] && env=(ECHO_RUNS=${ECHO_RUNS:-1} ECHO_SECONDS=${ECHO_SECONDS:-2})
  env "${env[@]}" ECHO_DATA="$data/echo.txt" bash "$src/bench/echo/run_echo.sh" "$build" ||
    echo "run.sh: run_echo.sh failed" >&2
  machine echo after
}

run_idle() {
  local idle="$build/bench/idle/idle_tasks"
  if [[ ! -x "$idle" ]]; then
    echo "run.sh: $idle not built (cmake --build $build --target idle_tasks)" >&2
    return 1
  fi
  rm -f "$data/idle.txt" "$data/machine_idle.txt"
  machine idle before
  local runs=${IDLE_RUNS:-3} counts="10000 100000 1000000"
  [[ "$quick" == 1 ]] && counts="10000 100000"
  # Go: optional; built here into the build directory (GOCACHE there too: nothing is fetched).
  local go_bin=
  if command -v go >/dev/null 2>&1; then
    mkdir -p "$build/bench/peers"
    if GOCACHE="$build/bench/peers/go-cache" GO111MODULE=off GOFLAGS= \
      go build -o "$build/bench/peers/idle_go" "$src/bench/peers/idle_go.go"; then
      go_bin="$build/bench/peers/idle_go"
      echo "go_version $(go version)" >>"$data/machine_idle.txt"
    fi
  else
    echo "Go: not installed (apt-get install golang-go to compare)" | tee -a "$data/idle.txt"
  fi
  # Boost.Fiber at a million costs about 10 GB: only with that much memory to spare.
  local avail_kb
  avail_kb=$(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo)
  echo "== idle tasks: RSS per task blocked on one event, $runs runs per configuration =="
  for n in $counts; do
    for ((r = 1; r <= runs; ++r)); do  # the implementations alternate within each round
      local cmds=("weave:$idle --impl weave --count $n"
        "weave_16k_stack:$idle --impl weave --count $n --stack-size 16384"
        "weave_packed_2k:$idle --impl weave --count $n --stack-size 2048")
      if ((n < 1000000 || avail_kb > 16 * 1024 * 1024)); then
        cmds+=("boost_fiber:$idle --impl boost_fiber --count $n")
      elif ((r == 1)); then
        echo "boost_fiber count=$n skipped=1 reason=\"needs ~10 GB, MemAvailable $((avail_kb / 1024)) MB\"" |
          tee -a "$data/idle.txt"
      fi
      cmds+=("thread:$idle --impl thread --count $n")
      [[ -n "$go_bin" ]] && cmds+=("go:env GOMAXPROCS=1 $go_bin --count $n")
      cmds+=("asyncio:python3 $src/bench/peers/idle_asyncio.py --count $n")
      for c in "${cmds[@]}"; do
        local label=${c%%:*} line
        read -r -a argv <<<"${c#*:}"
        line=$("${argv[@]}" 2>&1 | tail -1)
        echo "  $label: $line"
        echo "$label $line" >>"$data/idle.txt"
      done
    done
  done
  machine idle after
}

run_flags() {
  local flags="$build/docs/examples/flags/flags"
  rm -f "$data/flags.txt" "$data/machine_flags.txt"
  if [[ ! -x "$flags" ]]; then
    echo "not built: $flags" | tee "$data/flags.txt"
    return 0
  fi
  machine flags before
  local runs=${FLAGS_RUNS:-3}
  [[ "$quick" == 1 ]] && runs=1
  echo "== flags race: $runs runs of flags --mode all =="
  for ((r = 1; r <= runs; ++r)); do
    "$flags" --mode all 2>&1 | grep '^flags: mode=' | tee -a "$data/flags.txt"
  done
  machine flags after
}

for s in "${sections[@]}"; do
  case "$s" in
    micro) run_micro ;;
    echo) run_echo ;;
    idle) run_idle ;;
    flags) run_flags ;;
    report) ;;
    *) echo "run.sh: unknown section '$s' (all, micro, echo, idle, flags, report)" >&2; exit 2 ;;
  esac
done
python3 "$here/make_report.py" --data "$data" --out "$src/docs/bench.md" --build "$build"
