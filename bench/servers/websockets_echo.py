"""
websockets (asyncio implementation) echo server for the benchmark.

asyncio sets TCP_NODELAY on TCP transports itself.  Compression is off, the
size limit is raised, keepalive pings are off.
"""

from __future__ import annotations

import asyncio

import websockets
from _common import MAX_MESSAGE, announce, parseArgs
from websockets.asyncio.server import serve


async def echo(connection) -> None:
    async for message in connection:
        await connection.send(message)


async def main() -> None:
    args = parseArgs(__doc__.strip().split("\n")[0])
    async with serve(
        echo,
        args.host,
        args.port,
        compression=None,
        max_size=MAX_MESSAGE,
        ping_interval=None,
        backlog=1024,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        announce(port, server="websockets", version=websockets.__version__)
        await asyncio.Future()  # run until killed


if __name__ == "__main__":
    asyncio.run(main())
