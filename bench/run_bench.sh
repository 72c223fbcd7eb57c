#!/usr/bin/env bash
# Runs weave's benchmarks and prints medians and the ratios that matter (see bench/README.md).
#
# Usage: bench/run_bench.sh [BUILD_DIR]      (default: build; `make bench` passes its own)
#
# Environment:
#   SKYNET_RUNS=N        skynet runs per variant (default 5)
#   SKYNET_BOOST=0       leave out the Boost.Fiber skynet (it takes several seconds per run)
#   BENCH_ARGS="..."     extra arguments for weave_bench (e.g. --benchmark_filter=Yield)
#   BENCH_DATA=DIR       also keep the raw results there (weave_bench JSON with every
#                        repetition, skynet/gather/asyncio lines) for bench/report/run.sh
#
# Nothing here asserts on time: targets are printed next to the figures, and the script fails
# only if a program fails (a wrong skynet sum, a crash).

set -euo pipefail

build=${1:-build}
bench="$build/bench/weave_bench"
skynet="$build/bench/skynet"
for exe in "$bench" "$skynet"; do
  if [[ ! -x "$exe" ]]; then
    echo "run_bench.sh: $exe not found; build first (make -C $build weave_bench skynet)" >&2
    exit 2
  fi
done
runs=${SKYNET_RUNS:-5}
with_boost=${SKYNET_BOOST:-1}

# Other processes on a 2-CPU machine skew every figure: say so (but run anyway). Field 4 of
# /proc/loadavg counts runnable threads; read with a builtin, so the only one of ours is this
# shell. Sampled for a second.
busy=0
for _ in 1 2 3 4 5; do
  read -r _ _ _ runnable _ </proc/loadavg
  ((${runnable%%/*} > 1)) && busy=$((busy + 1))
  sleep 0.2
done
if ((busy >= 3)); then
  echo "run_bench.sh: WARNING: other processes are running ($(cut -d' ' -f1-4 /proc/loadavg)" \
    "in /proc/loadavg); the figures will be skewed" >&2
fi

out=$(mktemp -d)
# The raw results go to BENCH_DATA (if set) whatever happens later in the script.
keep_data() {
  if [[ -n "${BENCH_DATA:-}" ]]; then mkdir -p "$BENCH_DATA" && cp "$out"/* "$BENCH_DATA"/; fi
  rm -rf "$out"
}
trap keep_data EXIT

echo "== weave_bench: 5 repetitions, aggregates only (read the _median rows) =="
# The console shows the aggregates only; the JSON keeps every repetition too (min-max).
# shellcheck disable=SC2086  # BENCH_ARGS is a list of words
"$bench" --benchmark_repetitions=5 --benchmark_display_aggregates_only=true \
  --benchmark_out="$out/bench.json" --benchmark_out_format=json ${BENCH_ARGS:-}

# The thread ping-pong again with both threads on one CPU: cross-core and same-core wake-ups
# differ by an order of magnitude on these VMs, so both are reported.
if command -v taskset >/dev/null 2>&1; then
  echo
  echo "== BM_PingPong/std_thread_condvar with both threads on CPU 0 (taskset -c 0) =="
  taskset -c 0 "$bench" --benchmark_filter='^BM_PingPong/std_thread_condvar$' \
    --benchmark_repetitions=5 --benchmark_display_aggregates_only=true \
    --benchmark_out="$out/pingpong_1cpu.json" --benchmark_out_format=json
fi

echo
echo "== skynet: $runs runs per variant, variants alternating =="
variants=("weave eager" "weave fifo")
if [[ "$with_boost" == 1 ]]; then variants+=("boost_fiber eager"); fi
: >"$out/skynet.txt"
for ((i = 1; i <= runs; ++i)); do
  for v in "${variants[@]}"; do
    read -r impl mode <<<"$v"
    line=$("$skynet" --impl "$impl" --mode "$mode")
    echo "$line"
    echo "$line" >>"$out/skynet.txt"
  done
done

echo
python3 - "$out/bench.json" "$out/pingpong_1cpu.json" "$out/skynet.txt" <<'EOF'
import json, os, re, statistics, sys

bench_json, pingpong_json, skynet_txt = sys.argv[1:4]
to_ns = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Benchmarks whose timed thread waits for another thread: their CPU time is not their cost.
MULTI_THREAD = {"BM_PingPong/std_thread_condvar", "BM_SpawnJoin/std_thread",
                "BM_CallSoonThreadsafe/weave"}


def medians(path):
    """run_name -> (median real time in ns, median CPU time in ns, cv of the real time)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        data = json.load(f)
    med, cv = {}, {}
    for b in data["benchmarks"]:
        if b.get("run_type") != "aggregate":
            continue
        name = b["run_name"]
        if b["aggregate_name"] == "median":
            unit = to_ns[b["time_unit"]]
            med[name] = (b["real_time"] * unit, b["cpu_time"] * unit)
        elif b["aggregate_name"] == "cv":
            cv[name] = b["real_time"]  # a fraction, unitless
    return {n: (t[0], t[1], cv.get(n)) for n, t in med.items()}


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.1f} ns"


m = medians(bench_json)
one_cpu = medians(pingpong_json)
pp = "BM_PingPong/std_thread_condvar"

print("== Medians per operation: real time (the figure) and CPU time of the benchmark thread ==")
disturbed = []
for name, (ns, cpu, cv) in m.items():
    cv_s = f"cv {cv * 100:4.1f}%" if cv is not None else ""
    mt = "  (waits for another thread)" if name in MULTI_THREAD else ""
    print(f"  {name:<36} {fmt_ns(ns):>10}   cpu {fmt_ns(cpu):>10}   {cv_s}{mt}")
    if name not in MULTI_THREAD and ns > 1.1 * cpu:
        disturbed.append(name)
if pp in one_cpu:
    print(f"  {pp + ' [1 CPU]':<36} {fmt_ns(one_cpu[pp][0]):>10}")
if disturbed:
    print("  WARNING: real time is more than 10% above CPU time for single-threaded benchmarks\n"
          "  (" + ", ".join(disturbed) + "):\n"
          "  their thread was preempted by other processes. Absolute real times of this run are\n"
          "  inflated; the 'cpu' column of the ratios below is the one to read.")


def pick(name, col):
    if name not in m:
        return None
    if col == "cpu" and name in MULTI_THREAD:
        return None
    return m[name][0 if col == "real" else 1]


def ratio(a, b, col):
    x, y = pick(a, col), pick(b, col)
    return x / y if x is not None and y is not None else None


# (label, real value, cpu value or None, unit, target text, test)
rows = []


def add_ratio(label, a, b, target, test):
    rows.append((label, ratio(a, b, "real"), ratio(a, b, "cpu"), "x", target, test))


add_ratio("weave yield / raw Boost.Context switch", "BM_Yield/weave",
          "BM_Switch/raw_boost_context", "<= 3", lambda r: r <= 3)
add_ratio("weave yield / Boost.Fiber yield", "BM_Yield/weave", "BM_Yield/boost_fiber", "< 1",
          lambda r: r < 1)
add_ratio("Boost.Fiber spawn+join / weave spawn+join", "BM_SpawnJoin/boost_fiber",
          "BM_SpawnJoin/weave", ">= 2", lambda r: r >= 2)
add_ratio("std::thread spawn+join / weave spawn+join", "BM_SpawnJoin/std_thread",
          "BM_SpawnJoin/weave", ">= 400", lambda r: r >= 400)
rows.append(("weave spawn+join", pick("BM_SpawnJoin/weave", "real"),
             pick("BM_SpawnJoin/weave", "cpu"), "ns", "< 100 ns", lambda r: r < 100))

# skynet lines: "... time=X ms cpu=Y ms peak_rss=Z MB"
sky = {}
pat = re.compile(r"impl=(\S+) mode=(\S+) .* time=([\d.]+) ms cpu=([\d.]+) ms peak_rss=([\d.]+) MB")
with open(skynet_txt) as f:
    for line in f:
        mm = pat.search(line)
        if mm:
            key = f"{mm.group(1)} {mm.group(2)}"
            sky.setdefault(key, []).append(tuple(float(mm.group(i)) for i in (3, 4, 5)))


def med(key, i):
    return statistics.median(v[i] for v in sky[key])


if sky:
    print()
    print("== skynet (1,111,111 fibers): median [min - max] ==")
    for key, vals in sky.items():
        t, c, r = ([v[i] for v in vals] for i in range(3))
        print(f"  {key:<18} time {statistics.median(t):8.1f} ms [{min(t):.1f} - {max(t):.1f}]"
              f"   cpu {statistics.median(c):8.1f} ms"
              f"   peak RSS {statistics.median(r):7.1f} MB [{min(r):.1f} - {max(r):.1f}]"
              f"   ({len(vals)} runs)")
    if "weave eager" in sky:
        rows.append(("skynet weave eager", med("weave eager", 0), med("weave eager", 1), "ms",
                     "< 300 ms", lambda r: r < 300))
    if "weave eager" in sky and "boost_fiber eager" in sky:
        rows.append(("skynet Boost.Fiber dispatch / weave eager",
                     med("boost_fiber eager", 0) / med("weave eager", 0),
                     med("boost_fiber eager", 1) / med("weave eager", 1), "x", "", None))


def fmt(v, unit):
    if v is None:
        return "-"
    return f"{v:.2f}x" if unit == "x" else f"{v:.1f} {unit}"


print()
print("== Ratios (from the medians above; 'cpu': from CPU times, single-threaded pairs only) ==")
basis = "cpu" if disturbed else "real"
print(f"  {'':<44} {'real':>10} {'cpu':>10}   {'target':<9} met ({basis})")
for label, real, cpu, unit, target, test in rows:
    value = cpu if basis == "cpu" and cpu is not None else real
    met = "" if test is None or value is None else ("yes" if test(value) else "NO")
    if met and basis == "cpu" and cpu is None:
        met += " (real)"
    print(f"  {label:<44} {fmt(real, unit):>10} {fmt(cpu, unit):>10}   {target:<9} {met}")
if pp in m and pp in one_cpu:
    print(f"  {'thread ping-pong round trip, 2 CPUs / 1 CPU':<44} "
          f"{fmt_ns(m[pp][0])} / {fmt_ns(one_cpu[pp][0])}")
EOF

# ---- The tools tier beside Python asyncio (issue 3): queue ping-pong, create+gather ----------
gm="$build/bench/gather_million"
echo
echo "== gather_million (1,000,000 tasks created and gathered): $runs runs =="
: >"$out/gather.txt"
if [[ -x "$gm" ]]; then
  for ((i = 0; i < runs; i++)); do "$gm" | tee -a "$out/gather.txt"; done
  # Most of that time is the kernel handing out fresh pages for a million task objects (one page
  # fault per 4 KiB). The same program with glibc backing its heap by transparent huge pages
  # (a deployment setting, not a code change) shows how much: see bench/README.md.
  echo "-- the same with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (huge pages for the heap) --"
  : >"$out/gather_thp.txt"
  for ((i = 0; i < runs; i++)); do
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "$gm" | tee -a "$out/gather_thp.txt"
  done
fi
echo
echo "== Python asyncio peer (bench/peers/asyncio_bench.py), medians of 5 runs =="
: >"$out/asyncio.txt"
if command -v python3 >/dev/null 2>&1; then
  python3 "$(dirname "$0")/peers/asyncio_bench.py" --repetitions 5 | tee "$out/asyncio.txt"
fi
python3 - "$out/bench.json" "$out/gather.txt" "$out/asyncio.txt" "$out/gather_thp.txt" <<'EOF2'
import json, os, re, statistics, sys
bench_json, gather_txt, asyncio_txt, gather_thp_txt = sys.argv[1:5]
medians = {}
for b in json.load(open(bench_json))["benchmarks"]:
    if b.get("aggregate_name") == "median":
        medians[b["run_name"]] = b["real_time"] * {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
peer = {}
for line in open(asyncio_txt):
    parts = line.split()
    if len(parts) == 4:
        peer[parts[0]] = float(parts[1])
per_task = [float(m.group(1)) for m in
            (re.search(r"\(([\d.]+) ns per task\)", l) for l in open(gather_txt)) if m]
totals = [float(m.group(1)) for m in
          (re.search(r"in ([\d.]+) ms", l) for l in open(gather_txt)) if m]
print()
print("== weave vs asyncio (medians) ==")
def row(label, weave_ns, asyncio_ns, target=""):
    if weave_ns is None:
        return
    ratio = f"{asyncio_ns / weave_ns:8.1f}x" if asyncio_ns else "        -"
    a = f"{asyncio_ns:10.1f} ns" if asyncio_ns else "           -"
    print(f"  {label:<40} weave {weave_ns:9.1f} ns   asyncio {a}   asyncio/weave {ratio}  {target}")
row("queue ping-pong round trip", medians.get("BM_QueuePingPong/weave"),
    peer.get("asyncio_queue_pingpong"), "(target: weave < 100 ns)")
row("yield / sleep(0)", medians.get("BM_Yield/weave"), peer.get("asyncio_sleep0"))
row("create+gather, per task (1M tasks)", statistics.median(per_task) if per_task else None,
    peer.get("asyncio_create_gather"))
if totals:
    print(f"  1,000,000 tasks created and gathered: median {statistics.median(totals):.1f} ms "
          f"[{min(totals):.1f} - {max(totals):.1f}] (target: < 300 ms)")
thp = [float(m.group(1)) for m in
       (re.search(r"in ([\d.]+) ms", l) for l in open(gather_thp_txt)) if m] \
    if os.path.exists(gather_thp_txt) else []
if thp:
    print(f"  ... with the heap on huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1): median "
          f"{statistics.median(thp):.1f} ms [{min(thp):.1f} - {max(thp):.1f}]")
EOF2

# ---- The bridge (issue 4): bridge::call and use_fiber beside hand-written callbacks and Asio ----
python3 - "$out/bench.json" <<'EOF3'
import json, sys
to_ns = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
real, cpu = {}, {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("aggregate_name") == "median":
        real[b["run_name"]] = b["real_time"] * to_ns[b["time_unit"]]
        cpu[b["run_name"]] = b["cpu_time"] * to_ns[b["time_unit"]]
if not any(n.startswith("BM_BridgeCall") for n in real):
    sys.exit(0)
print()
print("== The bridge (medians; 'cpu' is the benchmark thread's CPU time) ==")
def row(label, a, b, kind, target, test):
    if a not in real or b not in real:
        return
    for col, d in (("real", real), ("cpu", cpu)):
        v = d[a] - d[b] if kind == "diff" else d[a] / d[b]
        shown = f"{v:8.1f} ns" if kind == "diff" else f"{v:8.2f}x "
        print(f"  {label:<52} {col:>4} {shown}  target {target:<10} met: {'yes' if test(v) else 'NO'}")
row("bridge::call, sync completion: added per call", "BM_BridgeCall/weave/sync",
    "BM_BridgeCall/raw_callback/sync", "diff", "< 100 ns", lambda v: v < 100)
row("bridge::call, call_soon completion: added per call", "BM_BridgeCall/weave/call_soon",
    "BM_BridgeCall/raw_callback/call_soon", "diff", "< 100 ns", lambda v: v < 100)
row("Asio timer: use_fiber / Asio callback", "BM_AsioTimer/use_fiber",
    "BM_AsioTimer/asio_callback", "ratio", "<= 1.5", lambda v: v <= 1.5)
row("Asio timer: use_fiber / asio::spawn", "BM_AsioTimer/use_fiber",
    "BM_AsioTimer/asio_spawn", "ratio", "< 1", lambda v: v < 1)
row("Asio post: use_fiber / Asio callback", "BM_AsioPost/use_fiber",
    "BM_AsioPost/asio_callback", "ratio", "<= 1.5", lambda v: v <= 1.5)
row("Asio post: use_fiber / asio::spawn", "BM_AsioPost/use_fiber",
    "BM_AsioPost/asio_spawn", "ratio", "< 1", lambda v: v < 1)
if "BM_BridgeForeignThread/weave" in real:
    print(f"  {'completion from another thread, round trip':<52} real {real['BM_BridgeForeignThread/weave']:8.1f} ns")
EOF3

# ---- TCP echo (issue 5): bench/echo/run_echo.sh -----------------------------------------------
# Every echo server against one load generator at 100, 1,000 and 10,000 connections (about
# 5 minutes; ECHO=0 skips it, ECHO_* variables tune it: see bench/echo/run_echo.sh).
if [[ "${ECHO:-1}" != 0 ]]; then
  echo
  bash "$(dirname "$0")/echo/run_echo.sh" "$build"
fi
