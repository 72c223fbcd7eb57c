#!/usr/bin/env python3
"""The Python asyncio peer of the TCP echo benchmark (bench/echo/run_echo.sh).

asyncio streams, the way the asyncio documentation writes an echo server: one coroutine per
connection reading what is there and writing it back, with drain() for flow control. TCP_NODELAY
is asyncio's default. Prints "listening on <port>" first, then serves until SIGINT/SIGTERM.

Usage: asyncio_echo_server.py [--port P]     (0, the default, picks a free port)
"""

import argparse
import asyncio
import signal


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
