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

# stop TITLE PROGRAM [ARGS...]: runs one example of $examples after printing its title.
stop() {
  local title="$1" program="$2"
  shift 2
  if [[ ! -x "$examples/$program" ]]; then
    echo "tour.sh: $examples/$program is not built; run 'make build' first" >&2
    exit 1
  fi
  stops=$((stops + 1))
  printf '\n%s== %d. %s%s\n' "$bold" "$stops" "$title" "$plain"
  "$examples/$program" "$@"
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

printf '\n%sThe tour is over: %d stops. Their sources are in docs/examples/.%s\n' \
  "$bold" "$stops" "$plain"
