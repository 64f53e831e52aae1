#!/usr/bin/env python3
"""asyncio's echo server written the fast way: a Protocol whose
data_received writes the data straight back to its transport (the
"echo server" of the asyncio docs, minus the prints), one server per port.

    server_asyncio.py PORT[,PORT...]

server_uvloop.py runs this same code on uvloop's event loop. Run with the
Debian python3 (/usr/bin/python3), which has python3-uvloop."""
import asyncio
import resource
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def raise_nofile(want=200000):
    # Idle-connection runs hold up to 100,000 sockets; root may go past the
    # hard limit, anyone else gets the hard limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(ports):
    loop = asyncio.get_running_loop()
    # create_server sets TCP_NODELAY on every accepted socket, as the C
    # servers do by hand.
    servers = [await loop.create_server(Echo, "127.0.0.1", p, backlog=4096,
                                        reuse_address=True) for p in ports]
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(new_loop=None):
    try:
        ports = [int(p) for p in sys.argv[1].split(",")]
        if len(sys.argv) != 2 or not all(0 < p < 65536 for p in ports):
            raise ValueError
    except (IndexError, ValueError):
        sys.exit("usage: %s PORT[,PORT...]" % sys.argv[0])
    raise_nofile()
    loop = new_loop() if new_loop else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(serve(ports))


if __name__ == "__main__":
    main()
