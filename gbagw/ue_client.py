"""Runs the sans-IO UE (gba.ue) over real HTTP against a BSF's Ub."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from gba.ue import Bootstrap, UeClient

MAX_ROUNDS = 3  # initial, challenge answer, and one more after a resynchronisation


class UbRefused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"BSF answered {status}: {text.strip()}")
        self.status = status


async def bootstrap(url: str, ue: UeClient, timeout: float = 10.0) -> Bootstrap:
    path = urlsplit(url).path or "/"
    ue.uri = path
    headers = {"Authorization": ue.authorization(), "User-Agent": ue.user_agent}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for _ in range(MAX_ROUNDS):
            async with session.get(url, headers=headers) as resp:
                body = await resp.read()
                if resp.status == 401:
                    headers = {
                        "Authorization": ue.on_challenge(resp.headers["WWW-Authenticate"]),
                        "User-Agent": ue.user_agent,
                    }
                    continue
                if resp.status == 200:
                    return ue.on_success(resp.headers.get("Authentication-Info"), body)
                raise UbRefused(resp.status, body.decode("utf-8", "replace")[:200])
    raise UbRefused(401, "too many challenges")
