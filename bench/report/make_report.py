#!/usr/bin/env python3
"""Writes docs/bench.md from the raw results bench/report/run.sh keeps in docs/bench/.

Every table holds medians with min-max and the ratios against each peer; the figures are SVG
files drawn by gnuplot (bench/report/lines.gp) from CSV files written next to them. Sections
whose data is missing say how to produce it.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
from collections import defaultdict

TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except Exception:  # a missing tool: the report says "-"
        return ""


def record_machine(path, build):
    cpu = sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": sh(". /etc/os-release && echo \"$PRETTY_NAME\""),
        "g++": sh("g++ --version | head -1"),
        "clang++-14": sh("clang++-14 --version | head -1"),
        "python3": sh("python3 --version"),
        "go": sh("go version") or "not installed",
        "boost": sh("dpkg-query -W -f='${Version}' libboost1.81-dev"),
        "gnuplot": sh("gnuplot --version") or "not installed",
        "build_type": sh(f"grep -m1 '^CMAKE_BUILD_TYPE:' {build}/CMakeCache.txt | cut -d= -f2"),
        "commit": sh("git -C " + os.path.dirname(path) + " rev-parse --short HEAD"),
    }
    with open(path, "w") as f:
        json.dump(info, f, indent=1)


def stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def fmt_num(v, digits=0):
    if v is None:
        return "-"
    if abs(v) >= 1e6 and digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def cell(st, digits=0, scale=1.0):
    if not st:
        return "-"
    m, lo, hi = (x * scale for x in st)
    return f"{fmt_num(m, digits)} [{fmt_num(lo, digits)}–{fmt_num(hi, digits)}]"


def fmt_ns(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def ratio(a, b):
    if not a or not b or not b[0]:
        return "-"
    return f"{a[0] / b[0]:.2f}×"


def kv_line(line):
    return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', line)}


def write_csv(path, xs, series, data):
    """data[(series, x)] = (median, min, max); NaN where missing."""
    with open(path, "w") as f:
        head = ["x"]
        for s in series:
            head += [s, f"{s}_min", f"{s}_max"]
        f.write(",".join(head) + "\n")
        for x in xs:
            row = [str(x)]
            for s in series:
                st = data.get((s, x))
                row += [f"{v:.6g}" for v in st] if st else ["NaN"] * 3
            f.write(",".join(row) + "\n")


def plot(here, csv, svg, series, title, xlab, ylab, ylog=0):
    if not shutil.which("gnuplot"):
        return False
    q = lambda s: s.replace("'", "")
    expr = (f"datafile='{csv}'; outfile='{svg}'; series={series}; ttl='{q(title)}'; "
            f"xlab='{q(xlab)}'; ylab='{q(ylab)}'; ylog={ylog}")
    r = subprocess.run(["gnuplot", "-e", expr, os.path.join(here, "lines.gp")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("make_report.py: gnuplot failed:", r.stderr)
        return False
    return True


def load_line(data, section):
    p = os.path.join(data, f"machine_{section}.txt")
    if not os.path.exists(p):
        return ""
    parts = {}
    for line in open(p):
        w = line.split()
        if len(w) >= 5 and w[0] in ("before", "after"):
            parts[w[0]] = (w[1], " ".join(w[2:5]), w[5] if len(w) > 5 else "")
    if "before" not in parts:
        return ""
    b = parts["before"]
    s = f"Run {b[0]}; load average (1/5/15 min) before: {b[1]}"
    if "after" in parts:
        s += f", after: {parts['after'][1]}"
    s += "."
    loads = [float(parts[k][1].split()[0]) for k in parts]
    if max(loads) > 1.5:  # 2 CPUs: more than this means other work shared them
        s += (" **Disturbed:** the 1-minute load average reached "
              f"{max(loads):.1f} on 2 CPUs (other processes were running), so times and rates "
              "in this section are low and noisy; memory figures are not affected.")
    return s


# ---- sections -----------------------------------------------------------------------------

def micro_section(data, out):
    d = os.path.join(data, "micro")
    bj = os.path.join(d, "bench.json")
    if not os.path.exists(bj):
        return ["_No data: run `bench/report/run.sh micro`._", ""]
    runs = defaultdict(list)  # name -> [(real ns, cpu ns)]
    for path in (bj, os.path.join(d, "pingpong_1cpu.json")):
        if not os.path.exists(path):
            continue
        suffix = " [1 CPU]" if "1cpu" in path else ""
        for b in json.load(open(path))["benchmarks"]:
            if b.get("run_type") == "iteration":
                u = TO_NS[b["time_unit"]]
                runs[b["run_name"] + suffix].append((b["real_time"] * u, b["cpu_time"] * u))
    real = {n: stats([r for r, _ in v]) for n, v in runs.items()}
    cpu = {n: stats([c for _, c in v]) for n, v in runs.items()}
    L = [load_line(data, "micro"), "",
         "Google Benchmark, 5 repetitions; time per operation, median [min–max] of the "
         "repetitions. *CPU* is the benchmark thread's CPU time (the better figure on a noisy "
         "machine for single-threaded benchmarks; for those that wait for another thread it is "
         "not their cost).", "",
         "| benchmark | real time | CPU time |", "|---|---|---|"]
    for n in runs:
        r, c = real[n], cpu[n]
        L.append(f"| `{n}` | {fmt_ns(r[0])} [{fmt_ns(r[1])}–{fmt_ns(r[2])}] | {fmt_ns(c[0])} |")
    L += ["", "**Ratios** (medians; > 1 means the peer takes longer than weave):", "",
          "| operation | peer | peer / weave (real) | peer / weave (CPU) |", "|---|---|---|---|"]
    pairs = [("switch: yield vs raw context switch", "BM_Yield/weave", "raw Boost.Context switch",
              "BM_Switch/raw_boost_context"),
             ("yield", "BM_Yield/weave", "Boost.Fiber", "BM_Yield/boost_fiber"),
             ("spawn+join", "BM_SpawnJoin/weave", "Boost.Fiber", "BM_SpawnJoin/boost_fiber"),
             ("spawn+join", "BM_SpawnJoin/weave", "std::thread", "BM_SpawnJoin/std_thread"),
             ("queue ping-pong", "BM_QueuePingPong/weave", "Boost.Fiber channel",
              "BM_QueuePingPong/boost_fiber_channel"),
             ("queue ping-pong", "BM_QueuePingPong/weave", "std::thread + condvar (2 CPUs)",
              "BM_QueuePingPong/std_thread_condvar"),
             ("contended lock", "BM_LockContended/weave", "Boost.Fiber mutex",
              "BM_LockContended/boost_fiber_mutex"),
             ("contended lock", "BM_LockContended/weave", "std::mutex, threads",
              "BM_LockContended/std_mutex_threads"),
             ("timer (use_fiber vs callback)", "BM_AsioTimer/use_fiber", "Boost.Asio callback",
              "BM_AsioTimer/asio_callback"),
             ("post (use_fiber vs callback)", "BM_AsioPost/use_fiber", "Boost.Asio callback",
              "BM_AsioPost/asio_callback"),
             ("post (use_fiber vs asio::spawn)", "BM_AsioPost/use_fiber", "asio::spawn",
              "BM_AsioPost/asio_spawn")]
    for label, w, peer, p in pairs:
        if w in real and p in real:
            L.append(f"| {label} | {peer} | {ratio(real[p], real[w])} | "
                     f"{ratio(cpu[p], cpu[w])} |")
    # asyncio peers: "name median min max" in ns
    ap = os.path.join(d, "asyncio.txt")
    peer = {}
    if os.path.exists(ap):
        for line in open(ap):
            w = line.split()
            if len(w) == 4:
                try:
                    peer[w[0]] = tuple(float(x) for x in w[1:])
                except ValueError:
                    pass
    gather = [float(m.group(1)) for m in (re.search(r"\(([\d.]+) ns per task\)", l)
                                          for l in open(os.path.join(d, "gather.txt")))
              if m] if os.path.exists(os.path.join(d, "gather.txt")) else []
    arows = [("queue ping-pong round trip", real.get("BM_QueuePingPong/weave"),
              peer.get("asyncio_queue_pingpong")),
             ("yield / `asyncio.sleep(0)`", real.get("BM_Yield/weave"), peer.get("asyncio_sleep0")),
             ("create+gather per task (1M tasks)", stats(gather), peer.get("asyncio_create_gather"))]
    if peer:
        L += ["", "**Against Python asyncio** (`bench/peers/asyncio_bench.py`, same machine):", "",
              "| operation | weave | asyncio | asyncio / weave |", "|---|---|---|---|"]
        for label, w, a in arows:
            if w and a:
                L.append(f"| {label} | {fmt_ns(w[0])} [{fmt_ns(w[1])}–{fmt_ns(w[2])}] | "
                         f"{fmt_ns(a[0])} [{fmt_ns(a[1])}–{fmt_ns(a[2])}] | {ratio(a, w)} |")
    sk = defaultdict(list)
    sp = os.path.join(d, "skynet.txt")
    if os.path.exists(sp):
        pat = re.compile(r"impl=(\S+) mode=(\S+) .* time=([\d.]+) ms cpu=([\d.]+) ms "
                         r"peak_rss=([\d.]+) MB")
        for line in open(sp):
            m = pat.search(line)
            if m:
                sk[f"{m.group(1)} {m.group(2)}"].append(tuple(float(m.group(i)) for i in (3, 4, 5)))
    if sk:
        L += ["", "**Skynet** (1,111,111 fibers in a tree; `build/bench/skynet`):", "",
              "| variant | time ms | CPU ms | peak RSS MB | runs |", "|---|---|---|---|---|"]
        for k, v in sk.items():
            L.append(f"| {k} | {cell(stats([x[0] for x in v]), 1)} | "
                     f"{cell(stats([x[1] for x in v]), 1)} | {cell(stats([x[2] for x in v]), 1)} "
                     f"| {len(v)} |")
        if "weave eager" in sk and "boost_fiber eager" in sk:
            a = stats([x[0] for x in sk["boost_fiber eager"]])
            b = stats([x[0] for x in sk["weave eager"]])
            L.append(f"\nBoost.Fiber (`launch::dispatch`) / weave eager: {ratio(a, b)} (time).")
    L += ["", "Regenerate: `bench/report/run.sh micro`", ""]
    return L


def idle_section(data, out, here):
    p = os.path.join(data, "idle.txt")
    if not os.path.exists(p):
        return ["_No data: run `bench/report/run.sh idle`._", ""]
    rows = defaultdict(list)
    notes = []
    for line in open(p):
        w = line.split(None, 1)
        if len(w) < 2:
            continue
        if line.startswith("Go: not installed"):
            notes.append("Go: not installed, so no goroutine figures in this run.")
            continue
        kv = kv_line(w[1])
        if "skipped" in kv or "reason" in kv:
            notes.append(f"{w[0]} at {kv.get('count', '?')}: skipped ({kv.get('reason', '')}).")
            continue
        if kv.get("ok") != "1" or "count" not in kv:
            notes.append(f"{w[0]}: failed: `{w[1].strip()}`")
            continue
        rows[(w[0], int(kv["count"]))].append(kv)
    names = {"weave": "weave (default, 256 KiB stacks)",
             "weave_16k_stack": "weave, 16 KiB stacks",
             "weave_packed_2k": "weave, packed 2 KiB stacks",
             "boost_fiber": "Boost.Fiber (64 KiB stacks)", "thread": "std::thread (pthread)",
             "go": "Go goroutines", "asyncio": "Python asyncio"}
    impls = [i for i in names if any(k[0] == i for k in rows)]
    counts = sorted({n for _, n in rows})
    st = lambda i, n, key: stats([float(r[key]) for r in rows.get((i, n), []) if key in r])
    L = [load_line(data, "idle"), "",
         "N tasks each blocked on **one shared event** (weave `Event`, Boost.Fiber "
         "`condition_variable`, `std::condition_variable`, a Go channel, `asyncio.Event`); "
         "memory per task = (RSS with N blocked − RSS before) / N, from `/proc/self/statm`. "
         "Page tables are not part of RSS: the C++ programs show theirs apart (VmPTE), and the number "
         "of mappings (`vm.max_map_count` is 65,530). Median [min–max] of "
         f"{max((len(v) for v in rows.values()), default=0)} runs, implementations alternating.",
         "", "| implementation | tasks | RSS per task, bytes | + page tables, bytes | "
         "create, ns per task | peak RSS MB | mappings |", "|---|---|---|---|---|---|---|"]
    for n in counts:
        for i in impls:
            if (i, n) not in rows:
                continue
            pte = st(i, n, "pte_per_task_bytes")
            L.append(f"| {names[i]} | {n:,} | {cell(st(i, n, 'rss_per_task_bytes'))} | "
                     f"{cell(pte) if pte else '-'} | {cell(st(i, n, 'create_ns_per_task'))} | "
                     f"{cell(st(i, n, 'peak_rss_mb'), 1)} | "
                     f"{fmt_num(st(i, n, 'mappings')[0]) if st(i, n, 'mappings') else '-'} |")
    L += ["", "**Ratios** of RSS per idle task, peer / weave (default settings; > 1: the peer "
          "needs more):", "", "| peer | " + " | ".join(f"{n:,}" for n in counts) + " |",
          "|---|" + "---|" * len(counts)]
    for i in impls:
        if i == "weave":
            continue
        cells = [ratio(st(i, n, "rss_per_task_bytes"), st("weave", n, "rss_per_task_bytes"))
                 for n in counts]
        L.append(f"| {names[i]} | " + " | ".join(cells) + " |")
    notes = list(dict.fromkeys(notes))  # each skip is logged once per round
    L += [""] + [f"- {n}" for n in notes] + ([""] if notes else [])
    csv = os.path.join(out, "idle_rss.csv")
    series = [i for i in impls]
    write_csv(csv, counts, series,
              {(i, n): st(i, n, "rss_per_task_bytes") for i in series for n in counts
               if st(i, n, "rss_per_task_bytes")})
    if plot(here, csv, os.path.join(out, "idle_rss.svg"), len(series),
            "Memory per idle task (blocked on one event)", "tasks alive at once",
            "RSS per task, bytes", 1):
        L += ["![RSS per idle task against the number of tasks](bench/idle_rss.svg)", ""]
    L += ["Regenerate: `bench/report/run.sh idle` (data: `docs/bench/idle.txt`, "
          "`docs/bench/idle_rss.csv`)", ""]
    return L


def echo_section(data, out, here):
    p = os.path.join(data, "echo.txt")
    if not os.path.exists(p):
        return ["_No data: run `bench/report/run.sh echo`._", ""]
    rows = defaultdict(list)
    for line in open(p):
        w = line.split()
        if len(w) < 3 or "msgs_per_s=" not in line:
            continue
        rows[(w[0], int(w[1]))].append(kv_line(" ".join(w[2:])))
    servers = list(dict.fromkeys(s for s, _ in rows))
    sizes = sorted({n for _, n in rows})
    st = lambda s, n, k: stats([float(r[k]) for r in rows.get((s, n), []) if r.get(k)])

    def rpc(s, n):
        v = []
        for r in rows.get((s, n), []):
            try:
                v.append((float(r["peak_rss_kb"]) - float(r["idle_rss_kb"])) * 1024 / n)
            except (KeyError, ValueError):
                pass
        return stats(v)
    names = {"weave-fiber": "weave, fiber per connection", "weave-protocol": "weave, Protocol "
             "callbacks", "asio": "Boost.Asio callbacks", "threads": "thread per connection",
             "asyncio": "Python asyncio streams"}
    runs = max((len(v) for v in rows.values()), default=0)
    pinned = True  # run_echo.sh's default (ECHO_PIN=1)
    mp = os.path.join(data, "machine_echo.txt")
    if os.path.exists(mp):
        for line in open(mp):
            w = line.split()
            if len(w) == 2 and w[0] == "pin":
                pinned = w[1] != "0"
    placement = ("server pinned to CPU 0 and load generator to CPU 1 (`ECHO_PIN=1`)" if pinned
                 else "servers and load generator not pinned to CPUs (`ECHO_PIN=0`)")
    L = [load_line(data, "echo"), "",
         "64-byte ping-pong on loopback, every connection in flight at once, a separate "
         f"load-generator process (`bench/echo/echo_load`); {placement}. The thread-per-connection "
         "server's 10,000 threads count as runnable in the load average, which therefore "
         "reads high after this section whatever else ran. "
         f"Median [min–max] of {runs} run(s) per server and size, servers alternating. RSS per "
         "connection = (server's peak RSS under load − its RSS before) / connections.", "",
         "| server | connections | msgs/s | p99 µs | RSS per connection, KB |",
         "|---|---|---|---|---|"]
    for n in sizes:
        for s in servers:
            if (s, n) in rows:
                L.append(f"| {names.get(s, s)} | {n:,} | {cell(st(s, n, 'msgs_per_s'))} | "
                         f"{cell(st(s, n, 'p99_us'), 1)} | {cell(rpc(s, n), 1, 1 / 1024)} |")
    L += ["", "**Ratios** of msgs/s, weave (fiber per connection) / peer (> 1: weave is faster):",
          "", "| peer | " + " | ".join(f"{n:,}" for n in sizes) + " |",
          "|---|" + "---|" * len(sizes)]
    for s in servers:
        if s != "weave-fiber":
            L.append(f"| {names.get(s, s)} | " + " | ".join(
                ratio(st("weave-fiber", n, "msgs_per_s"), st(s, n, "msgs_per_s"))
                for n in sizes) + " |")
    csv = os.path.join(out, "echo_throughput.csv")
    write_csv(csv, sizes, servers, {(s, n): st(s, n, "msgs_per_s") for s in servers
                                    for n in sizes if st(s, n, "msgs_per_s")})
    if plot(here, csv, os.path.join(out, "echo_throughput.svg"), len(servers),
            "TCP echo throughput (64 B ping-pong)", "concurrent connections", "messages per s"):
        L += ["", "![echo msgs/s against connections](bench/echo_throughput.svg)"]
    L += ["", "Regenerate: `bench/report/run.sh echo` (data: `docs/bench/echo.txt`, "
          "`docs/bench/echo_throughput.csv`)", ""]
    csv = os.path.join(out, "echo_rss.csv")
    write_csv(csv, sizes, servers, {(s, n): tuple(x / 1024 for x in rpc(s, n)) for s in servers
                                    for n in sizes if rpc(s, n)})
    if plot(here, csv, os.path.join(out, "echo_rss.svg"), len(servers),
            "Echo server memory per connection", "concurrent connections",
            "RSS per connection, KB", 1):
        L += ["![echo server RSS per connection](bench/echo_rss.svg)", "",
              "Regenerate: `bench/report/run.sh echo` (data: `docs/bench/echo_rss.csv`)", ""]
    return L


def flags_section(data):
    p = os.path.join(data, "flags.txt")
    if not os.path.exists(p):
        return ["_No data: run `bench/report/run.sh flags`._", ""]
    text = open(p).read()
    if text.startswith("not built"):
        return [f"The flags program was not built when this report was made ({text.strip()}): "
                "no figures. Build `docs/examples/flags` and run `bench/report/run.sh flags`.",
                ""]
    rows = defaultdict(list)
    for line in text.splitlines():
        kv = kv_line(line)
        if "mode" in kv:
            rows[kv["mode"]].append(kv)
    st = lambda m, k: stats([float(r[k]) for r in rows.get(m, []) if k in r])
    L = [load_line(data, "flags"), "",
         "`flags --mode all` (defaults: its embedded HTTP server, injected latency, "
         f"{len(rows.get('fibers', []))} run(s)); median [min–max].", "",
         "| client | flags | ok | failed | seconds | items/s |", "|---|---|---|---|---|---|"]
    for m in ("sequential", "threads", "fibers"):
        if m in rows:
            r = rows[m][0]
            L.append(f"| {m} | {r.get('count', '-')} | {r.get('ok', '-')} | "
                     f"{r.get('failed', '-')} | {cell(st(m, 'seconds'), 2)} | "
                     f"{cell(st(m, 'items_per_s'), 1)} |")
    L += ["", f"fibers / threads: {ratio(st('fibers', 'items_per_s'), st('threads', 'items_per_s'))}"
          f"; fibers / sequential: "
          f"{ratio(st('fibers', 'items_per_s'), st('sequential', 'items_per_s'))} (items/s).",
          "", "Regenerate: `bench/report/run.sh flags` (data: `docs/bench/flags.txt`)", ""]
    return L


def headline(data):
    """The scale target in one paragraph, from idle.txt."""
    p = os.path.join(data, "idle.txt")
    if not os.path.exists(p):
        return []
    per = defaultdict(list)
    for line in open(p):
        w = line.split(None, 1)
        if len(w) == 2:
            kv = kv_line(w[1])
            if kv.get("ok") == "1" and kv.get("count") == "1000000":
                per[w[0]].append((float(kv["rss_per_task_bytes"]),
                                  float(kv.get("pte_per_task_bytes", 0))))
    if "weave" not in per:
        return []
    med = {k: (statistics.median(x for x, _ in v), statistics.median(y for _, y in v))
           for k, v in per.items()}
    w = med["weave"]
    L = ["## The scale target", "",
         f"**1,000,000 idle weave fibers** (each blocked on one shared `Event`) in one process "
         f"with default settings: **{w[0]:,.0f} bytes of RSS per fiber** (+{w[1]:,.0f} bytes of "
         f"page tables, outside RSS); target ≤ 8 KiB (8,192 bytes): "
         f"**{'met' if w[0] + w[1] <= 8192 else 'NOT met'}**."]
    if "weave_packed_2k" in med:
        L[-1] += (f" The small-stack setting (`stack_size = 2048`: packed stacks, see "
                  f"docs/fibers.md \"Stacks\"): **{med['weave_packed_2k'][0]:,.0f} bytes**")
        L[-1] += (f", against {med['go'][0]:,.0f} for a blocked goroutine (Go, same machine)"
                  if "go" in med else " (Go: not measured in this run)")
        if "asyncio" in med:
            L[-1] += f" and {med['asyncio'][0]:,.0f} for an asyncio task"
        L[-1] += "."
    return L + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", default="build")
    ap.add_argument("--record-machine", action="store_true")
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    mpath = os.path.join(a.data, "machine.json")
    if a.record_machine or not os.path.exists(mpath):
        record_machine(mpath, a.build)
    m = json.load(open(mpath))
    L = ["# weave benchmarks", "",
         "Generated by `bench/report/run.sh` (`make bench`) from the data in `docs/bench/`; do "
         "not edit by hand. Method: `bench/README.md`. The machine is a shared 2-vCPU VM: read "
         "ratios between programs measured in the same run, not absolute times.", "",
         "## The machine", "",
         "| | |", "|---|---|",
         f"| CPU | {m.get('cpu')} ({m.get('cores')} cores) |",
         f"| memory | {m.get('memory_gb')} GB |",
         f"| OS, kernel | {m.get('os')}, Linux {m.get('kernel')} |",
         f"| compilers | {m.get('g++')}; {m.get('clang++-14')} |",
         f"| peers | Boost {m.get('boost')}; {m.get('python3')}; {m.get('go')} |",
         f"| weave build | {m.get('build_type') or '-'} (benchmarks at -O2), commit "
         f"{m.get('commit')} |", "",
         ]
    L += headline(a.data)
    L += ["## Memory per idle task (the scale test)", ""]
    L += idle_section(a.data, a.data, here)
    L += ["## TCP echo: throughput and memory against concurrency", ""]
    L += echo_section(a.data, a.data, here)
    L += ["## The flags race (sequential vs threads vs fibers)", ""]
    L += flags_section(a.data)
    L += ["## Micro-benchmarks", ""]
    L += micro_section(a.data, a.data)
    text = "\n".join(L).rstrip() + "\n"
    text = re.sub(r"\n{3,}", "\n\n", text)
    with open(a.out, "w") as f:
        f.write(text)
    print(f"make_report.py: wrote {a.out}")


if __name__ == "__main__":
    main()
