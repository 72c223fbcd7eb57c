#!/usr/bin/env python3
"""Drives docs/examples/net/http_server as real clients would: curl (when installed), raw
sockets, and the program's own weave client mode (--get), over a scratch directory with files,
a directory, a large file and symlinks pointing in and out; then stops it with a signal.

Usage: http_server_check.py PROGRAM [--signal INT|TERM]
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def curl(url, *extra):
    """Returns (status, content_type, body, headers) of one curl run."""
    with tempfile.NamedTemporaryFile() as body, tempfile.NamedTemporaryFile() as head:
        out = subprocess.run(
            ["curl", "-s", "--path-as-is", "-o", body.name, "-D", head.name, "-w",
             "%{http_code} %{content_type}", *extra, url],
            capture_output=True, text=True, timeout=30)
        code, _, ctype = out.stdout.partition(" ")
        return int(code or 0), ctype, open(body.name, "rb").read(), open(head.name).read()


def raw(port, data, until_close=True):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
            if not until_close:
                break
        return b"".join(chunks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("program")
    ap.add_argument("--signal", default="INT", choices=["INT", "TERM"])
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="weave_http_")
    try:
        root = os.path.join(tmp, "root")
        os.makedirs(os.path.join(root, "sub"))
        os.makedirs(os.path.join(root, "empty_dir"))
        files = {
            "index.html": b"<h1>home</h1>\n",
            "a.txt": b"hello, file\n",
            "style.css": b"body{}\n",
            "sub/index.html": b"<p>sub</p>\n",
            "Name With Space.TXT": b"spaced\n",
        }
        for name, data in files.items():
            with open(os.path.join(root, name), "wb") as f:
                f.write(data)
        big = bytes((i * 7 + i // 4096) % 251 for i in range(3 * 1024 * 1024 + 17))
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(big)
        with open(os.path.join(tmp, "secret.txt"), "wb") as f:
            f.write(b"secret\n")
        os.symlink(os.path.join(tmp, "secret.txt"), os.path.join(root, "link_out"))
        os.symlink("a.txt", os.path.join(root, "link_in"))
        os.symlink(tmp, os.path.join(root, "dir_out"))

        proc = subprocess.Popen([args.program, "--root", root, "--port", "0"],
                                stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()
        check(first.startswith("listening on "), "first line is 'listening on <port>': %r" % first)
        port = int(first.split()[-1])
        base = "http://127.0.0.1:%d" % port

        # ---- the program's own client (weave::net::http::Client) ----
        out = subprocess.run([args.program, "--get", base + "/a.txt"], capture_output=True,
                             timeout=30)
        check(out.returncode == 0, "--get /a.txt exits 0")
        check(out.stdout == b"200 12 text/plain; charset=utf-8\nhello, file\n",
              "--get /a.txt output: %r" % out.stdout[:200])
        out = subprocess.run([args.program, "--get", base + "/big.bin"], capture_output=True,
                             timeout=30)
        check(out.stdout.split(b"\n", 1)[1] == big, "--get /big.bin is the whole file")
        out = subprocess.run([args.program, "--get", base + "/nope"], capture_output=True,
                             timeout=30)
        check(out.returncode == 1 and out.stdout.startswith(b"404 "), "--get /nope is a 404")
        out = subprocess.run([args.program, "--get", base + "/big.bin", "--head"],
                             capture_output=True, timeout=30)
        check(out.stdout == b"200 0 application/octet-stream\n", "--get --head: %r" % out.stdout)

        # ---- raw sockets ----
        resp = raw(port, b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /style.css HTTP/1.1\r\n"
                         b"Host: x\r\n\r\nGET /a.txt HTTP/1.1\r\nConnection: close\r\n\r\n")
        check(resp.count(b"HTTP/1.1 200 OK") == 3, "three pipelined answers")
        check(resp.count(b"hello, file\n") == 2, "HEAD has no body between the two GETs")
        check(b"Content-Type: text/css; charset=utf-8" in resp, "css type")
        resp = raw(port, b"GET /a.txt HTTP/1.0\r\n\r\n")
        check(resp.startswith(b"HTTP/1.0 200 OK") and resp.endswith(b"hello, file\n"),
              "HTTP/1.0 answer then close")
        resp = raw(port, b"GET /%2e%2e/secret.txt HTTP/1.1\r\n\r\n", until_close=False)
        check(resp.startswith(b"HTTP/1.1 403") or resp.startswith(b"HTTP/1.1 404"),
              "raw %%2e%%2e escape refused: %r" % (resp[:40],))
        resp = raw(port, b"GET /a%zz HTTP/1.1\r\n\r\n", until_close=False)
        check(resp.startswith(b"HTTP/1.1 400"), "bad escape is a 400")
        resp = raw(port, b"GET /a%00.txt HTTP/1.1\r\n\r\n", until_close=False)
        check(resp.startswith(b"HTTP/1.1 400"), "an encoded NUL is a 400")
        resp = raw(port, b"garbage\r\n\r\n")
        check(resp.startswith(b"HTTP/1.1 400"), "garbage is a 400")

        # ---- curl ----
        if shutil.which("curl") is None:
            print("curl not found: its checks are skipped")
        else:
            code, ctype, body, _ = curl(base + "/a.txt")
            check((code, ctype, body) == (200, "text/plain; charset=utf-8", files["a.txt"]),
                  "curl /a.txt: %r" % ((code, ctype, body),))
            code, ctype, body, head = curl(base + "/big.bin")
            check(code == 200 and body == big, "curl /big.bin whole (%d, %d bytes)" %
                  (code, len(body)))
            check("Content-Length: %d" % len(big) in head, "big.bin has a Content-Length")
            code, ctype, body, _ = curl(base + "/")
            check((code, ctype, body) == (200, "text/html; charset=utf-8", files["index.html"]),
                  "curl / is index.html")
            code, _, _, head = curl(base + "/sub")
            check(code == 301 and "Location: /sub/" in head, "a directory without / redirects")
            code, _, body, _ = curl(base + "/sub/")
            check(code == 200 and body == files["sub/index.html"], "curl /sub/")
            check(curl(base + "/empty_dir/")[0] == 404, "a directory without index.html: 404")
            check(curl(base + "/missing.txt")[0] == 404, "missing: 404")
            code, _, body, _ = curl(base + "/Name%20With%20Space.TXT")
            check(code == 200 and body == b"spaced\n", "percent-decoded name")
            for escape in ["/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/%2e%2e/etc/passwd",
                           "/sub/../../secret.txt", "/link_out", "/dir_out/secret.txt",
                           "/..%2fsecret.txt"]:
                code, _, body, _ = curl(base + escape)
                check(code in (403, 404) and b"secret" not in body, "escape %s: %d" %
                      (escape, code))
            code, _, body, _ = curl(base + "/link_in")
            check(code == 200 and body == files["a.txt"], "a symlink inside the root is served")
            code, _, _, head = curl(base + "/a.txt", "-X", "POST", "-d", "x")
            check(code == 405 and "Allow: GET, HEAD" in head, "POST is a 405")
            # With -I curl writes the response head to the output file too; no body may follow.
            code, _, body, head = curl(base + "/big.bin", "-I")
            check(code == 200 and body.decode(errors="replace").replace("\r\n", "\n") == head and
                  "Content-Length: %d" % len(big) in head, "HEAD of big.bin")
            # Two URLs in one curl: one connection (keep-alive).
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-w",
                                  "%{num_connects}\n", base + "/a.txt", base + "/style.css"],
                                 capture_output=True, text=True, timeout=30)
            check(out.stdout.split() == ["1", "0"], "keep-alive reuse: %r" % out.stdout)

        # ---- a client still connected at the signal ----
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle.sendall(b"GET /a.txt HTTP/1.1\r\n\r\n")
        idle.recv(65536)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT if args.signal == "INT" else signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
            check(False, "the server did not stop on SIG%s" % args.signal)
        check(proc.returncode == 0, "exit status 0 (got %s)" % proc.returncode)
        check(("SIG%s: stopped after serving" % args.signal) in rest, "stop message: %r" % rest)
        idle.close()
    finally:
        if "proc" in locals() and proc.poll() is None:
            proc.kill()  # never leave the server behind when a check raised
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
