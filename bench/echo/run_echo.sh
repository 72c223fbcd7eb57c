#!/usr/bin/env bash
# The TCP echo benchmark: every server against the same load generator (echo_load), 64-byte
# ping-pong on loopback at 100, 1,000 and 10,000 connections, medians of several runs with the
# servers alternating; prints msgs/s, p50/p99 latency, server RSS per connection and the ratios
# the issue sets targets for. See bench/README.md ("TCP echo").
#
# Usage: bench/echo/run_echo.sh [BUILD_DIR]      (default: build)
#
# Environment:
#   ECHO_SIZES="100 1000 10000"  connection counts
#   ECHO_RUNS=3                  runs per server and size (the median is reported)
#   ECHO_SECONDS=3               measured seconds per run (after ECHO_WARMUP=1 s of warm-up)
#   ECHO_SERVERS="weave-fiber weave-protocol asio threads asyncio"   which servers, in order
#   ECHO_PIN=1                   pin the server to CPU 0 and the load generator to CPU 1 (the
#                                default: each side gets one CPU, threaded server included);
#                                ECHO_PIN=0 lets the scheduler place them (say which in reports)
#   ECHO_DATA=FILE               also keep the raw result lines there (bench/report/run.sh)
#
# Every server is a separate program that prints "listening on <port>" as its first line when
# started with --port 0, and exits on SIGTERM. The load generator is another process, so each
# side has its own RLIMIT_NOFILE (10,000 connections need 10,000 fds on each side).
#
# It fails only if a program fails (a server that does not start, a load run with errors);
# nothing here asserts on speed: the targets are printed next to the ratios.

set -uo pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
load="$build/bench/echo/echo_load"
sizes=${ECHO_SIZES:-"100 1000 10000"}
runs=${ECHO_RUNS:-3}
seconds=${ECHO_SECONDS:-3}
warmup=${ECHO_WARMUP:-1}
servers=${ECHO_SERVERS:-"weave-fiber weave-protocol asio threads asyncio"}
pin=${ECHO_PIN:-1}

if [[ ! -x "$load" ]]; then
  echo "run_echo.sh: $load not found; build first (cmake --build $build --target echo_load)" >&2
  exit 2
fi

# The command line of each server.
server_cmd() {
  case "$1" in
    weave-fiber) echo "$build/docs/examples/net/echo_server --port 0 --mode fiber" ;;
    weave-protocol) echo "$build/docs/examples/net/echo_server --port 0 --mode protocol" ;;
    asio) echo "$build/bench/echo/asio_echo_server --port 0" ;;
    threads) echo "$build/bench/echo/thread_echo_server --port 0" ;;
    asyncio) echo "python3 $src/bench/peers/asyncio_echo_server.py --port 0" ;;
    *) return 1 ;;
  esac
}

# Leave out the servers that are not built (and say so).
active=()
for s in $servers; do
  cmd=$(server_cmd "$s") || { echo "run_echo.sh: unknown server '$s'" >&2; exit 2; }
  exe=${cmd%% *}
  if [[ "$exe" == python3 ]]; then
    command -v python3 >/dev/null || { echo "run_echo.sh: no python3: leaving out $s" >&2; continue; }
  elif [[ ! -x "$exe" ]]; then
    echo "run_echo.sh: $exe not built: leaving out $s" >&2
    continue
  fi
  active+=("$s")
done
((${#active[@]})) || { echo "run_echo.sh: no server to run" >&2; exit 2; }

srv_pin=() cli_pin=()
if [[ "$pin" == 1 ]] && command -v taskset >/dev/null; then
  srv_pin=(taskset -c 0) cli_pin=(taskset -c 1)
fi

out=$(mktemp -d)
server_pid=
cleanup() {
  [[ -n "$server_pid" ]] && kill -KILL "$server_pid" 2>/dev/null
  [[ -n "${ECHO_DATA:-}" && -f "$out/results.txt" ]] && cp "$out/results.txt" "$ECHO_DATA"
  rm -rf "$out"
}
trap cleanup EXIT

kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status" 2>/dev/null; }

failed=0
: >"$out/results.txt"
echo "== TCP echo: 64-byte ping-pong, ${seconds} s measured after ${warmup} s warm-up," \
  "$runs runs per server and size, servers alternating; pinned: $([[ ${#srv_pin[@]} -gt 0 ]] && echo 'server CPU 0, load CPU 1' || echo no) =="
for n in $sizes; do
  for ((r = 1; r <= runs; ++r)); do
    for s in "${active[@]}"; do
      read -r -a cmd <<<"$(server_cmd "$s")"
      # A fresh file per run: the shell truncates the redirection target only once the
      # background child runs, so a reused file could still show the previous server's port.
      rm -f "$out/server.out" "$out/server.err"
      "${srv_pin[@]}" "${cmd[@]}" >"$out/server.out" 2>"$out/server.err" &
      server_pid=$!
      port=
      for ((i = 0; i < 100; ++i)); do
        port=$(awk 'NR == 1 && $1 == "listening" && $2 == "on" { print $3 }' "$out/server.out" \
          2>/dev/null)
        [[ -n "$port" ]] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
      done
      if [[ -z "$port" ]]; then
        echo "  $s: did not print 'listening on <port>':" >&2
        cat "$out/server.err" >&2
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        server_pid=
        failed=1
        continue
      fi
      idle=$(kb "$server_pid" VmRSS)
      line=$("${cli_pin[@]}" "$load" --port "$port" --connections "$n" --seconds "$seconds" \
        --warmup "$warmup" --size 64)
      rc=$?
      # The peak resident set of the server, which was reached under load.
      peak=$(kb "$server_pid" VmHWM)
      kill -TERM "$server_pid" 2>/dev/null
      for ((i = 0; i < 100; ++i)); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
      done
      stopped=clean
      if kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid"
        stopped="did not stop on SIGTERM within 5 s"
      fi
      wait "$server_pid"
      src_rc=$?
      server_pid=
      [[ "$stopped" == clean && $src_rc -ne 0 ]] && stopped="exit status $src_rc on SIGTERM"
      printf '  %-15s n=%-6s run %d: %s idle_rss_kb=%s peak_rss_kb=%s%s\n' "$s" "$n" "$r" \
        "${line:-(no result)}" "$idle" "$peak" "$([[ $stopped == clean ]] || echo " [$stopped]")"
      if [[ $rc -ne 0 || -z "$line" ]]; then
        echo "  $s: the load generator failed (exit $rc)" >&2
        failed=1
      fi
      [[ "$stopped" == clean ]] || failed=1
      echo "$s $n $line idle_rss_kb=$idle peak_rss_kb=$peak" >>"$out/results.txt"
    done
  done
done

python3 - "$out/results.txt" <<'EOF'
import re, statistics, sys
from collections import defaultdict

rows = defaultdict(list)  # (server, n) -> [dict]
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 3 or "msgs_per_s=" not in line:
        continue
    kv = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
    rows[(parts[0], int(parts[1]))].append(kv)

servers = list(dict.fromkeys(s for s, _ in rows))
sizes = sorted({n for _, n in rows})


def med(s, n, key):
    vals = [float(r[key]) for r in rows.get((s, n), []) if r.get(key) not in (None, "")]
    return (statistics.median(vals), min(vals), max(vals)) if vals else None


def rss_per_conn(s, n):
    vals = []
    for r in rows.get((s, n), []):
        try:
            vals.append((float(r["peak_rss_kb"]) - float(r["idle_rss_kb"])) * 1024 / n)
        except (KeyError, ValueError):
            pass
    return statistics.median(vals) if vals else None


print()
print("== Medians [min - max] per server and connection count ==")
print(f"  {'server':<15} {'conns':>6} {'msgs/s':>9} {'[min - max]':>19} {'p50 us':>9} {'p99 us':>9}"
      f" {'RSS/conn':>10} {'idle RSS':>9}")
for n in sizes:
    for s in servers:
        m = med(s, n, "msgs_per_s")
        if not m:
            continue
        p50, p99 = med(s, n, "p50_us"), med(s, n, "p99_us")
        idle = med(s, n, "idle_rss_kb")
        rpc = rss_per_conn(s, n)
        print(f"  {s:<15} {n:>6} {m[0]:>9.0f} {f'[{m[1]:.0f} - {m[2]:.0f}]':>19} {p50[0]:>9.1f}"
              f" {p99[0]:>9.1f} {f'{rpc / 1024:.1f} KB' if rpc is not None else '-':>10}"
              f" {f'{idle[0] / 1024:.1f} MB' if idle else '-':>9}")

print()
print("== Ratios of median msgs/s (targets from issue 5) ==")
ratios = [("weave-fiber / asio", "weave-fiber", "asio", ">= 0.9", lambda r: r >= 0.9),
          ("weave-fiber / asyncio", "weave-fiber", "asyncio", ">= 3", lambda r: r >= 3),
          ("weave-fiber / threads", "weave-fiber", "threads", "> 1 at 10k", None),
          ("weave-protocol / asio", "weave-protocol", "asio", "", None)]
print(f"  {'':<24}" + "".join(f"{n:>10}" for n in sizes) + "   target")
for label, a, b, target, test in ratios:
    cells, mets = [], []
    for n in sizes:
        x, y = med(a, n, "msgs_per_s"), med(b, n, "msgs_per_s")
        if x and y and y[0] > 0:
            r = x[0] / y[0]
            cells.append(f"{r:>9.2f}x")
            ok = test(r) if test else (r > 1 if n >= 10000 and b == "threads" else None)
            if ok is not None:
                mets.append(f"{n}:{'yes' if ok else 'NO'}")
        else:
            cells.append(f"{'-':>10}")
    print(f"  {label:<24}" + "".join(cells) + f"   {target:<10} {' '.join(mets)}")
for n in sizes:
    a, b = rss_per_conn("weave-fiber", n), rss_per_conn("threads", n)
    if a is not None and b:
        print(f"  weave-fiber / threads RSS per connection at {n}: {a / b:.2f}x"
              f" ({a / 1024:.1f} KB vs {b / 1024:.1f} KB)")
EOF
exit $failed
