#!/usr/bin/env python3
"""Drives `flags --server-only` as a user would: start it on a free port, read "listening on
<port>", check a flag and a 404 with a plain HTTP client (urllib), run `flags --url --save`
against it with the same failure plan, check the saved files, then stop the server with
SIGTERM and check that it says so and exits with status 0.

Usage: flags_server_check.py <path to flags>
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

FAIL = ["--fail", "404", "--fail-rate", "0.2"]


def main():
    flags = sys.argv[1]
    server = subprocess.Popen([flags, "--server-only", "--port", "0", "--latency-ms", "1"] + FAIL,
                              stdout=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        m = re.fullmatch(r"listening on (\d+)\n", first)
        assert m, f"unexpected first line: {first!r}"
        base = f"http://127.0.0.1:{m.group(1)}"

        with urllib.request.urlopen(base + "/flags/fr.gif", timeout=5) as r:
            body = r.read()
            assert r.status == 200 and r.headers["Content-Type"] == "image/gif", r.headers
            assert body.startswith(b"GIF89a") and body.endswith(b"\x00;"), body[:16]
            assert int(r.headers["Content-Length"]) == len(body)
        for path in ["/flags/FR.gif", "/flags/f.gif", "/index.html", "/flags/fr.png"]:
            try:
                urllib.request.urlopen(base + path, timeout=5)
                raise AssertionError(f"{path} was found")
            except urllib.error.HTTPError as e:
                assert e.code == 404, (path, e.code)

        saved = tempfile.mkdtemp(prefix="flags_saved_")
        client = subprocess.run([flags, "--url", base + "/", "--mode", "fibers", "--count", "50",
                                 "--concurrency", "10", "--quiet", "--save", saved] + FAIL,
                                capture_output=True, text=True, timeout=60)
        print(client.stdout, end="")
        assert client.returncode == 0, client.stderr
        assert f"50 flags from {base}," in client.stdout, client.stdout
        assert re.search(r"^flags: mode=fibers count=50 ok=4[0-9] failed=[1-9] ",
                         client.stdout, re.M), client.stdout
        assert "(injected 404)" in client.stdout
        # --save wrote every flag that arrived, byte for byte what the server sends.
        files = sorted(os.listdir(saved))
        ok = int(re.search(r" ok=(\d+) ", client.stdout).group(1))
        assert len(files) == ok and f"saved {ok} flags to {saved}" in client.stdout, files
        with open(os.path.join(saved, "ad.gif"), "rb") as f:
            with urllib.request.urlopen(base + "/flags/ad.gif", timeout=5) as r:
                assert f.read() == r.read()
        shutil.rmtree(saved)

        server.send_signal(signal.SIGTERM)
        rest, _ = server.communicate(timeout=10)
        print(first + rest, end="")
        assert server.returncode == 0, server.returncode
        assert re.search(r"^SIGTERM: stopped after serving \d+ connections$", rest, re.M), rest
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    print("flags_server_check: ok")


if __name__ == "__main__":
    main()
