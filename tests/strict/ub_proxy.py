"""A Ub HTTP/1.1 relay that drops the User-Agent header: the BSF then sees no product token at all.

TS 33.220 5.3.2: the Ub messages are identical for GBA_ME and GBA_U; the BSF chooses GBA_U from the GUSS
(uiccType) alone. Relaying without User-Agent proves that no Ub token is what selected it.
"""

from __future__ import annotations

import asyncio
import contextlib


class UbProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.dropped: list[str] = []  # the User-Agent values removed, for the test to show
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        back = asyncio.create_task(self._pipe(up_reader, writer))
        try:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                lines = head.split(b"\r\n")
                kept = []
                length = 0
                for line in lines:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"user-agent":
                        self.dropped.append(value.strip().decode("latin-1"))
                        continue
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                    kept.append(line)
                up_writer.write(b"\r\n".join(kept) + (await reader.readexactly(length) if length else b""))
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, asyncio.LimitOverrunError):
            pass
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await back
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
