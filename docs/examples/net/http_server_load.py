#!/usr/bin/env python3
"""Loads docs/examples/net/http_server with real HTTP load generators, wrk and ab (Debian
packages wrk and apache2-utils), over a scratch directory of 101 small files.

Two modes:

  http_server_load.py PROGRAM
      The quick check the tests run (about 3 s): `ab -k -n 2000 -c 20` and
      `wrk -t2 -c50 -d1s` on the server. Every request must succeed (no socket error, no
      failed or non-2xx response), the server must still answer afterwards and stop with status
      0 on SIGTERM. Exits 77 (a ctest skip) when neither wrk nor ab is installed; a missing one
      is skipped alone.

  http_server_load.py PROGRAM --full [--runs 3] [--duration 10] [--conns 10,100,1000]
                      [--ab-n 20000] [--ab-c 100] [--peers]
      The figures of docs/examples/net/http_server.md: for each load, `--runs` runs of
      `wrk -t2 -cC -dDs --latency -s rotate.lua` (and of `ab -k -n N -c C`), each against a
      freshly started server, alternating with the peers when --peers is given (Python's
      `python3 -m http.server`, threaded, HTTP/1.0 so one connection per request, and the same
      handler tuned: HTTP/1.1 keep-alive, TCP_NODELAY, a backlog of 1024, no request log). Prints a Markdown table: median requests/s with
      min-max, medians of the latency p50 and p99, errors summed over the runs, and the
      server's peak RSS (VmHWM) median. The same checks as the quick mode apply to weave's runs;
      the peers' errors are reported, not failed.

The wrk script rotates over the 101 files (f000.txt .. f099.txt, 100 B to 1000 B, and
index.html, 520 B), one path per request.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SKIP = 77
failures = []

ROTATE_LUA = """\
local paths = {}
for i = 0, 99 do paths[#paths + 1] = string.format("/f%03d.txt", i) end
paths[#paths + 1] = "/index.html"
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[n % #paths + 1])
end
"""

# The stock handler tuned: HTTP/1.1 keep-alive, TCP_NODELAY (its head and body go out in two
# sends, which Nagle's algorithm and the client's delayed ACK hold up by 40 ms), a backlog of
# 1024 instead of socketserver's 5, and no log line per request.
PY_KEEPALIVE = (
    "import functools, http.server as h, sys\n"
    "h.SimpleHTTPRequestHandler.protocol_version = 'HTTP/1.1'\n"
    "h.SimpleHTTPRequestHandler.disable_nagle_algorithm = True\n"
    "h.SimpleHTTPRequestHandler.log_message = lambda *a: None\n"
    "h.ThreadingHTTPServer.request_queue_size = 1024\n"
    "h.test(HandlerClass=functools.partial(h.SimpleHTTPRequestHandler, directory=sys.argv[2]),\n"
    "       ServerClass=h.ThreadingHTTPServer, port=int(sys.argv[1]), bind='127.0.0.1')\n")


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def make_root(tmp):
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    for i in range(100):
        with open(os.path.join(root, "f%03d.txt" % i), "wb") as f:
            f.write((b"weave %03d " % i) * ((i % 10 + 1) * 10))
    with open(os.path.join(root, "index.html"), "wb") as f:
        f.write(b"<h1>hello from weave</h1>\n" * 20)
    lua = os.path.join(tmp, "rotate.lua")
    with open(lua, "w") as f:
        f.write(ROTATE_LUA)
    return root, lua


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Server:
    """A server under test: weave's example or a Python peer."""

    def __init__(self, kind, program, root):
        self.kind = kind
        if kind == "weave":
            self.proc = subprocess.Popen([program, "--root", root, "--port", "0"],
                                         stdout=subprocess.PIPE, text=True)
            first = self.proc.stdout.readline()
            if not first.startswith("listening on "):
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("%s did not start: first line %r" % (program, first))
            self.port = int(first.split()[-1])
        else:
            self.port = free_port()
            if kind == "python":
                cmd = [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                       "--directory", root]
            else:  # python-keepalive
                cmd = [sys.executable, "-c", PY_KEEPALIVE, str(self.port), root]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            if not wait_port(self.port, self.proc):
                raise RuntimeError("%s did not start" % kind)

    def peak_rss_kib(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def answers(self):
        """True if a plain request still gets a 200."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"GET /f001.txt HTTP/1.0\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.")
        except OSError:
            return False

    def stop(self):
        """SIGTERM; returns weave's stop message check (peers: just ends them)."""
        if self.proc.poll() is not None:
            return False
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return False
        if self.kind != "weave":
            return True
        return self.proc.returncode == 0 and "SIGTERM: stopped after serving" in (out or "")


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port, conns, duration, lua):
    cmd = ["wrk", "-t2", "-c%d" % conns, "-d%ds" % duration, "--latency", "-s", lua,
           "http://127.0.0.1:%d/" % port]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    r = {"cmd": " ".join(cmd), "raw": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    for q in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % q, out, re.M)
        r["p" + q] = to_ms(*m.groups()) if m else float("nan")
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    return r


def run_ab(port, n, conns):
    cmd = ["ab", "-q", "-k", "-n", str(n), "-c", str(conns),
           "http://127.0.0.1:%d/index.html" % port]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = proc.stdout
    r = {"cmd": " ".join(c for c in cmd if c != "-q"), "raw": out + proc.stderr}
    m = re.search(r"Requests per second:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    for q in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\d+)" % q, out, re.M)
        r["p" + q] = float(m.group(1)) if m else float("nan")
    m = re.search(r"Failed requests:\s+(\d+)", out)
    r["errors"] = int(m.group(1)) if m else n
    if proc.returncode != 0:
        # ab gives up on the first socket error or timeout ("apr_pollset_poll: The timeout
        # specified has expired") and prints only how many requests had completed.
        m = re.search(r"Total of (\d+) requests completed", out + proc.stderr)
        done = int(m.group(1)) if m else 0
        r["errors"] = max(r["errors"], n - done, 1)
        r["aborted"] = "ab gave up after %d of %d: %s" % (
            done, n, (proc.stderr.strip().splitlines() or ["?"])[0])
    m = re.search(r"Non-2xx responses:\s+(\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Complete requests:\s+(\d+)", out)
    r["requests"] = int(m.group(1)) if m else 0
    return r


def check_run(kind, label, r, expect_requests=None):
    if kind != "weave":
        return
    check(r["rps"] > 0, "%s: no result\n%s" % (label, r["raw"]))
    check(r["errors"] == 0, "%s: %d errors\n%s" % (label, r["errors"], r["raw"]))
    check(r["non2xx"] == 0, "%s: %d non-2xx responses" % (label, r["non2xx"]))
    if expect_requests is not None:
        check(r["requests"] == expect_requests, "%s: %d of %d requests completed" %
              (label, r["requests"], expect_requests))


def quick(args, root, lua, have_wrk, have_ab):
    srv = Server("weave", args.program, root)
    try:
        if have_ab:
            r = run_ab(srv.port, 2000, 20)
            print("ab -k -n 2000 -c 20: %.0f req/s, p50 %g ms, p99 %g ms" %
                  (r["rps"], r["p50"], r["p99"]), flush=True)
            check_run("weave", "ab", r, 2000)
        else:
            print("ab not found (apache2-utils): its run is skipped")
        if have_wrk:
            r = run_wrk(srv.port, 50, 1, lua)
            print("wrk -t2 -c50 -d1s: %.0f req/s, p50 %.3f ms, p99 %.3f ms" %
                  (r["rps"], r["p50"], r["p99"]), flush=True)
            check_run("weave", "wrk", r)
        else:
            print("wrk not found: its run is skipped")
        check(srv.answers(), "the server answers after the load")
    finally:
        check(srv.stop(), "SIGTERM stops the server with status 0 and its message")


def fmt_ms(v):
    return "%.2f" % v if v < 10 else "%.1f" % v


def full(args, root, lua, have_wrk, have_ab):
    kinds = ["weave"] + (["python", "python-keepalive"] if args.peers else [])
    loads = []
    if have_wrk:
        loads += [("wrk", c) for c in args.conns]
    if have_ab:
        loads.append(("ab", args.ab_c))
    rows = []
    for tool, conns in loads:
        results = {k: [] for k in kinds}
        for run in range(args.runs):
            for kind in kinds:  # alternated: weave, peers, weave, peers, ...
                srv = Server(kind, args.program, root)
                try:
                    if tool == "wrk":
                        r = run_wrk(srv.port, conns, args.duration, lua)
                    else:
                        r = run_ab(srv.port, args.ab_n, conns)
                    alive = srv.answers()
                    r["rss"] = srv.peak_rss_kib()
                finally:
                    stopped = srv.stop()
                label = "%s -c%d run %d (%s)" % (tool, conns, run + 1, kind)
                check_run(kind, label, r, args.ab_n if tool == "ab" else None)
                if kind == "weave":
                    check(alive, label + ": the server answers after the load")
                    check(stopped, label + ": SIGTERM stops it with status 0")
                if "aborted" in r:
                    print("%s: %s" % (label, r["aborted"]), flush=True)
                print("%s: %.0f req/s, p50 %s ms, p99 %s ms, errors %d, non-2xx %d, RSS %d KiB" %
                      (label, r["rps"], fmt_ms(r["p50"]), fmt_ms(r["p99"]), r["errors"],
                       r["non2xx"], r["rss"]), flush=True)
                results[kind].append(r)
        for kind in kinds:
            rs = results[kind]
            rps = [r["rps"] for r in rs]
            rows.append({
                "load": "%s -c%d" % (tool, conns), "server": kind,
                "rps": statistics.median(rps), "min": min(rps), "max": max(rps),
                "p50": statistics.median(r["p50"] for r in rs),
                "p99": statistics.median(r["p99"] for r in rs),
                "errors": sum(r["errors"] + r["non2xx"] for r in rs),
                "rss": statistics.median(r["rss"] for r in rs) / 1024.0,
                "cmd": rs[0]["cmd"],
            })
    print()
    print("| load | server | req/s median (min-max) | p50 ms | p99 ms | errors | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    base = {}
    for row in rows:
        if row["server"] == "weave":
            base[row["load"]] = row["rps"]
        ratio = ""
        if row["rps"] == 0:
            ratio = " (ab gave up)"
        elif row["server"] != "weave":
            ratio = " (weave x%.1f)" % (base[row["load"]] / row["rps"])
        print("| `%s` | %s | %.0f (%.0f-%.0f)%s | %s | %s | %d | %.1f |" %
              (row["load"], row["server"], row["rps"], row["min"], row["max"], ratio,
               fmt_ms(row["p50"]), fmt_ms(row["p99"]), row["errors"], row["rss"]))
    print()
    for row in rows:
        if row["server"] == "weave":
            print("   ", row["cmd"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("program")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conns", default="10,100,1000")
    ap.add_argument("--ab-n", type=int, default=20000)
    ap.add_argument("--ab-c", type=int, default=100)
    ap.add_argument("--peers", action="store_true")
    args = ap.parse_args()
    args.conns = [int(c) for c in args.conns.split(",")]

    have_wrk = shutil.which("wrk") is not None
    have_ab = shutil.which("ab") is not None
    if not have_wrk and not have_ab:
        print("neither wrk nor ab is installed (apt-get install wrk apache2-utils): skipped")
        return SKIP

    tmp = tempfile.mkdtemp(prefix="weave_http_load_")
    try:
        root, lua = make_root(tmp)
        (full if args.full else quick)(args, root, lua, have_wrk, have_ab)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
