"""A small keep-alive HTTP/1.1 load generator on asyncio streams (for tests of the model server)."""

from __future__ import annotations

import asyncio


async def _hammer(host: str, port: int, path: str, body: bytes, headers: dict, total: int, conns: int,
                  on_progress=None) -> list[tuple[int, bytes]]:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n{head}\r\n").encode() + body
    todo = iter(range(total))
    results: list[tuple[int, bytes]] = []

    async def worker():
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in todo:
                writer.write(request)
                await writer.drain()
                status = int((await reader.readline()).split()[1])
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                results.append((status, await reader.readexactly(length)))
                if on_progress is not None:
                    on_progress(len(results))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return results


def hammer(url: str, path: str, body: bytes, total: int, conns: int, headers: dict | None = None,
           on_progress=None) -> list[tuple[int, bytes]]:
    """POST *body* to *path* *total* times over *conns* connections; [(status, response body)]."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return asyncio.run(asyncio.wait_for(_hammer(host, int(port), path, body, headers or {}, total, conns,
                                                on_progress), timeout=600))
