"""The demo NAF: any path behind Ua HTTP Digest answers with the identity the BSF asserted."""

from __future__ import annotations

import json

from aiohttp import web

from naf.ua_digest import UaDigestAuth, identity


async def _whoami(request: web.Request) -> web.Response:
    ident = identity(request)
    return web.json_response(
        {"btid": ident.btid, "impi": ident.impi, "uss": [u.gsid for u in ident.uss]},
        headers={"X-3GPP-Asserted-Identity": f'"{ident.impi}"' if ident.impi else '""'},
        dumps=lambda body: json.dumps(body) + "\n",  # a line of its own on a terminal (gbagw ue ua-get, curl)
    )


def create_demo_naf(auth: UaDigestAuth) -> web.Application:
    app = web.Application(middlewares=[auth.middleware], client_max_size=64 * 1024)
    app.router.add_route("*", "/{tail:.*}", _whoami)
    return app
