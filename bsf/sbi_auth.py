"""OAuth2 bearer check for the BSF's SBI (TS 33.501 13.4.1, TS 29.309 securitySchemes): access tokens
signed by a key of a static JWKS, audience ``nbsp-gba``-scoped. The token's ``sub`` names the NAF.
"""

from __future__ import annotations

import json
from pathlib import Path

import jwt

SCOPE = "nbsp-gba"
OPERATION_SCOPE = "nbsp-gba:bootstrapping-info-retrieval:invoke"


class BearerError(Exception):
    def __init__(self, status: int, message: str, error: str) -> None:
        super().__init__(message)
        self.status = status
        self.challenge = f'Bearer error="{error}"'


class BearerAuth:
    def __init__(self, jwks: dict[str, object], audience: str | None = None) -> None:
        self._keys = jwt.PyJWKSet.from_dict(jwks)
        self._audience = audience

    @classmethod
    def from_file(cls, path: Path, audience: str | None = None) -> BearerAuth:
        return cls(json.loads(path.read_text()), audience)

    def check(self, authorization: str | None) -> str:
        """Return the NAF identity (``sub``) of a valid token that grants the Nbsp_GBA scope."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise BearerError(401, "an OAuth2 bearer token is required", "invalid_request")
        token = authorization[7:].strip()
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next((k for k in self._keys.keys if kid is None or k.key_id == kid), None)
            if key is None:
                raise BearerError(401, "token signed by an unknown key", "invalid_token")
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=["ES256", "RS256", "PS256"],
                audience=self._audience,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise BearerError(401, f"invalid token: {exc}", "invalid_token") from None
        scopes = str(claims.get("scope", "")).split()
        if SCOPE not in scopes and OPERATION_SCOPE not in scopes:
            raise BearerError(403, "the token does not grant the nbsp-gba scope", "insufficient_scope")
        return str(claims["sub"])
