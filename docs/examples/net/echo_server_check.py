#!/usr/bin/env python3
"""Drives echo_server as any client would, then stops it with a signal.

usage: echo_server_check.py PROGRAM --mode fiber|protocol --signal INT|TERM

Starts PROGRAM --port 0 --mode M, reads the port from its first line ("listening on <port>"),
and checks: many clients at once get every line back; a 1 MiB payload comes back intact
while it is still being sent (flow control both ways); a half-closed client gets its bytes
and then end-of-file; a client that resets mid-message does not disturb the others. Then,
with one idle client still connected, it sends SIGINT or SIGTERM and expects the server to
close that client, print its summary line and exit with status 0.
"""

import argparse
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

TIMEOUT = 20.0


def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s, n):
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(min(65536, n - len(out)))
        if not chunk:
            fail("end of file after %d of %d bytes" % (len(out), n))
        out += chunk
    return bytes(out)


def many_clients(port, clients=20, lines=50):
    errors = []

    def client(k):
        try:
            with connect(port) as s:
                for i in range(lines):
                    msg = ("client %d line %d\n" % (k, i)).encode()
                    s.sendall(msg)
                    if recv_exactly(s, len(msg)) != msg:
                        errors.append("client %d: wrong echo" % k)
                        return
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("client %d: %r" % (k, e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        fail("; ".join(errors[:5]))
    print("ok: %d clients x %d lines echoed" % (clients, lines), flush=True)


def big_payload(port, size=1 << 20):
    payload = bytes((i * 7 + i // 251) % 256 for i in range(size))
    got = bytearray()
    with connect(port) as s:
        # Send from a thread while this one reads: the server must keep echoing while its
        # client has not finished sending (neither side may wait for the other).
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        while len(got) < size:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        sender.join()
    if bytes(got) != payload:
        fail("1 MiB payload: got %d bytes back, equal: %s" % (len(got), bytes(got) == payload))
    print("ok: 1 MiB echoed intact", flush=True)


def half_close(port):
    with connect(port) as s:
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    if got != b"last words":
        fail("half-close: got %r" % got)
    print("ok: half-closed client got its bytes, then end of file", flush=True)


def reset_mid_message(port):
    s = connect(port)
    s.sendall(b"a message cut sh")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST
    with connect(port) as t:
        t.sendall(b"still there?\n")
        if recv_exactly(t, 13) != b"still there?\n":
            fail("after a reset: wrong echo")
    print("ok: a reset client does not disturb the others", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("program")
    ap.add_argument("--mode", required=True)
    ap.add_argument("--signal", required=True, choices=["INT", "TERM"])
    a = ap.parse_args()
    sig = signal.SIGINT if a.signal == "INT" else signal.SIGTERM

    proc = subprocess.Popen([a.program, "--port", "0", "--mode", a.mode],
                            stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        m = re.fullmatch(r"listening on (\d+)\n", first)
        if not m:
            fail("first line: %r" % first)
        port = int(m.group(1))
        print("ok: %s" % first.strip(), flush=True)

        many_clients(port)
        big_payload(port)
        half_close(port)
        reset_mid_message(port)

        idle = connect(port)
        idle.sendall(b"ping\n")
        recv_exactly(idle, 5)
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            fail("still running %.0f s after SIG%s" % (TIMEOUT, a.signal))
        rest = proc.stdout.read()
        if code != 0:
            fail("exit status %d after SIG%s" % (code, a.signal))
        idle.settimeout(TIMEOUT)
        if idle.recv(16) != b"":
            fail("the idle client was not closed")
        idle.close()
        want = r"SIG%s: stopped after serving (\d+) connections\n" % a.signal
        m = re.fullmatch(want, rest)
        if not m:
            fail("last line: %r" % rest)
        # 20 clients + big + half-close + reset + its follower + idle
        if int(m.group(1)) != 25:
            fail("served %s connections, expected 25" % m.group(1))
        print("ok: SIG%s -> clean exit 0, idle client closed, %s" % (a.signal, rest.strip()),
              flush=True)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    start = time.monotonic()
    main()
    print("all checks passed in %.2f s" % (time.monotonic() - start))
