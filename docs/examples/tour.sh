#!/usr/bin/env bash
# The tour of weave that `make demo` runs: each stop is one example program, run for real
# (real time, real terminal), introduced by a one-line title. Everything runs on this machine;
# no stop reaches outside it.
#
# Usage: docs/examples/tour.sh [BUILD_DIR]   (default: build)
#
# To add a stop, add one `stop` line below, in the order a newcomer should see them.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac
examples="$build/docs/examples"

if [[ -t 1 ]]; then bold=$'\e[1m' plain=$'\e[0m'; else bold='' plain=''; fi
stops=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
# One row per stop for the table at the end: number, program, seconds, result.
rows=()

now() { date +%s.%N; }

# record PROGRAM START RESULT: adds the stop's row to the final table.
record() {
  local secs
  secs=$(awk -v a="$2" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  rows+=("$stops|$1|$secs|$3")
}

# stop TITLE PROGRAM [ARGS...]: runs one example of $examples after printing its title.
stop() {
  local title="$1" program="$2" start
  shift 2
  if [[ ! -x "$examples/$program" ]]; then
    echo "tour.sh: $examples/$program is not built; run 'make build' first" >&2
    exit 1
  fi
  stops=$((stops + 1))
  printf '\n%s== %d. %s%s\n' "$bold" "$stops" "$title" "$plain"
  start=$(now)
  "$examples/$program" "$@" | tee "$log/out"
  record "$program" "$start" "$(summary "$program")"
}

# The one-line result of a stop for the table: the figures of the stops that race, else "ok".
summary() {
  case "$1" in
    flags/flags)
      # "flags: mode=M count=N ok=K failed=F seconds=S items_per_s=R", one line per mode.
      awk '/^flags: mode=/ {
             for (i = 2; i <= NF; ++i) { split($i, kv, "="); f[kv[1]] = kv[2] }
             out = out sep f["mode"] " " f["items_per_s"] "/s (" f["ok"] "/" f["count"] ")"; sep = ", "
           } END { print (out == "" ? "ok" : out) }' "$log/out" ;;
    *) echo ok ;;
  esac
}

# echo_race CONNECTIONS: the weave fiber echo server and the thread-per-connection one, each
# loaded by CONNECTIONS concurrent clients (bench/echo/run_echo.sh, one short run each).
echo_race() {
  local n="$1" start line fib thr
  local script="$root/bench/echo/run_echo.sh"
  stops=$((stops + 1))
  printf '\n%s== %d. echo at %s connections: the fiber echo server vs one thread per connection (each pinned to one CPU, load on the other)%s\n' \
    "$bold" "$stops" "$n" "$plain"
  if [[ ! -x "$build/bench/echo/echo_load" || ! -x "$build/bench/echo/thread_echo_server" ]]; then
    echo "tour.sh: the echo benchmark is not built (WEAVE_BUILD_BENCH=ON); skipping this stop"
    record "echo $n" "$(now)" "skipped: not built"
    return
  fi
  start=$(now)
  ECHO_SIZES="$n" ECHO_RUNS=1 ECHO_SECONDS=2 ECHO_WARMUP=1 ECHO_PIN=1 \
    ECHO_SERVERS="weave-fiber threads" bash "$script" "$build" >"$log/echo" 2>&1 || true
  # Medians table rows: "  server conns msgs/s [min - max] p50 p99 RSS/conn KB idle RSS MB".
  fib=$(awk -v n="$n" '$1 == "weave-fiber" && $2 == n { print $3, $(NF-3); exit }' "$log/echo")
  thr=$(awk -v n="$n" '$1 == "threads" && $2 == n { print $3, $(NF-3); exit }' "$log/echo")
  if [[ -z "$fib" || -z "$thr" ]]; then
    cat "$log/echo"
    record "echo $n" "$start" "failed (see above)"
    return
  fi
  read -r fmsgs frss <<<"$fib"
  read -r tmsgs trss <<<"$thr"
  printf '  %-34s %9s msgs/s   %5s KB of RSS per connection\n' \
    "weave fibers (one loop, one thread)" "$fmsgs" "$frss" \
    "std::thread per connection" "$tmsgs" "$trss"
  line=$(awk -v a="$fmsgs" -v b="$tmsgs" -v c="$frss" -v d="$trss" \
    'BEGIN { printf "fibers %.0f msgs/s vs threads %.0f (%.2fx); RSS/conn %s vs %s KB", a, b, a / b, c, d }')
  echo "  $line"
  record "echo $n" "$start" "$line"
}

stop "hello: two fibers sleep 1 s each, at the same time, so the run takes 1 s, not 2" hello
stop "spinner: a spinner animates while a slow function works, with a thread, then a fiber" spinner
# The ports of the asyncio tutorials: collecting results, queues, limits, a whole pipeline,
# then the two ways to stall a loop and their cures. All on real time.
stop "gather_as_completed: ten tasks; gather: all results, in spawn order; as_completed: as they finish" \
  gather_as_completed
stop "queue_workers: a producer fills a bounded queue, three workers drain it; join(), then cancel" \
  queue_workers
stop "semaphore_fetch: twenty fetches, at most five at a time under a weave::Semaphore" semaphore_fetch
stop "restaurant: GreetBot, WaitBot, ChefBot and WineBot, four fibers linked by queues on one thread" \
  restaurant
stop "cpu_starve: a fiber that computes without yielding stops a heartbeat fiber; yield() fixes it" \
  cpu_starve
stop "blocking_call: a blocking call in a fiber stops every fiber; weave::to_thread does not" \
  blocking_call
# The tutorials' headline: the same download code, one at a time, on threads, on fibers.
stop "flags: 60 flag images from a local HTTP server with 50 ms latency: sequential, 50 threads, 50 fibers" \
  flags/flags --mode all --count 60
# The bridge: callback code moved to fibers one call site at a time (docs/migration.md).
stop "three_stages: one callback library called with nested callbacks, as sequential fiber code, with a timeout, and from callback code" \
  bridge/three_stages
stop "asio_client_fibers: an Asio TCP client as fiber code (weave::use_fiber), beside a callback-style Asio server" \
  bridge/asio_client_fibers
# Networking: fibers serving and calling connections on the loop's reactor (docs/net.md).
stop "echo_client: a fiber echo server on a free local port, and 100 fiber clients talking to it at once" \
  net/echo_client
stop "chat_server: a line-based chat room, three scripted clients joining, talking and leaving" \
  net/chat_server --demo
stop "echo_server: the same echo server as fibers and as Protocol callbacks on one loop, then a clean stop on SIGINT" \
  net/echo_server --demo
stop "subprocess_tee: tee fed through a pipe, its output logged by another fiber, then terminated" \
  net/subprocess_tee

# The threads-versus-fibers headline: 10,000 concurrent connections on one machine.
echo_race 10000

printf '\n%sThe tour is over: %d stops. Their sources are in docs/examples/.%s\n\n' \
  "$bold" "$stops" "$plain"
printf '%s%3s  %-28s %6s  %s%s\n' "$bold" "#" "stop" "secs" "result" "$plain"
for r in "${rows[@]}"; do
  IFS='|' read -r num prog secs result <<<"$r"
  printf '%3s  %-28s %6s  %s\n' "$num" "$prog" "$secs" "$result"
done
