"""pysiaalarm as a reference receiver for benches/e2e/run.sh.

Starts pysiaalarm's asyncio TCP server (SIAClient) on 127.0.0.1:PORT with the accounts that
`tocsin load --accounts K` sends (100000, 100001, ..., 100000 + K - 1: see account_id() in
src/cli/load.rs) and an event callback that does nothing. Everything else is pysiaalarm's own
default: the stock asyncio event loop, its parser, CRC check, timestamp window (40 s in the
past, 20 s in the future, which `tocsin load`'s fresh UTC timestamps meet) and replies.

One argument is passed to asyncio.start_server beside the defaults: backlog=4096, the listen
backlog tocsin and the ceiling use, so that opening 10 000 connections at once is not
throttled by asyncio's default backlog of 100 (connecting happens before `tocsin load` starts
its clock, so it only shortens the set-up).

    python pysia_server.py PORT ACCOUNTS

Prints "ready" on stdout once listening; stops on SIGTERM or SIGINT and then prints
pysiaalarm's counters (valid events, CRC, account, timestamp, format errors) on stderr.
"""

import asyncio
import dataclasses
import signal
import sys

from pysiaalarm.aio import SIAAccount, SIAClient

FIRST_ACCOUNT = 100000


async def on_event(_event):
    """The receiver's work beyond the protocol: none."""


async def main(port: int, accounts: int) -> None:
    sia_accounts = [SIAAccount(str(FIRST_ACCOUNT + i)) for i in range(accounts)]
    client = SIAClient("127.0.0.1", port, sia_accounts, function=on_event)
    await client.async_start(backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    print(f"pysiaalarm counters: {dataclasses.asdict(client.counts)}", file=sys.stderr, flush=True)
    await client.async_stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
