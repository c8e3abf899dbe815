#!/usr/bin/env python3
"""Python asyncio peer of tools/bench-net.sh: an echo server and an
HTTP/1.1 keep-alive hello world on asyncio streams (standard library only:
asyncio has no HTTP server, so the request head is read with
readuntil(b"\\r\\n\\r\\n") and answered by hand).

    asyncio_net_peer.py echo PORT   asyncio.start_server; each handler
                                    reads up to 4096 bytes, writes them
                                    back, awaits drain()
    asyncio_net_peer.py http PORT   "Hello, World!\\n" to each request
                                    head (GET: no body), keep-alive
                                    unless the request says close

Runs until killed.
"""
import asyncio
import sys

RESPONSE = (b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Length: 14\r\n"
            b"\r\n"
            b"Hello, World!\n")


async def echo(reader, writer):
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def http(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(RESPONSE)
            await writer.drain()
            if b"connection: close" in head.lower():
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            ConnectionError):
        pass
    finally:
        writer.close()


async def main(mode, port):
    server = await asyncio.start_server(echo if mode == "echo" else http,
                                        "127.0.0.1", port)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("echo", "http"):
        sys.exit("usage: asyncio_net_peer.py echo|http PORT")
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
