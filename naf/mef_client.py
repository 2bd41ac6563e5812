"""MAF side of the MEF: fetch Km by KeID over mutually authenticated TLS (TS-0003 8.3.2.1, 10.3.2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from gba import onem2m
from gbaio.tls import TlsError, cert_context, connect, peer_names, request_json

CERT_SUITES = "ECDHE-ECDSA-AES128-CBC-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"


class KmRefused(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(f"MEF refused ({status}): {why}")
        self.status = status


@dataclass(frozen=True, slots=True)
class KmCredential:
    km: bytes = field(repr=False)
    kmid: str
    enrolee_id: str
    lifetime: str


@dataclass(frozen=True, slots=True)
class MefClient:
    host: str
    port: int
    mef_fqdn: str
    cert: Path
    key: Path
    ca: Path

    def fetch_km(self, keid: str) -> KmCredential:
        """RETRIEVE fetchCredentials/<KeID>/21 (SUID 21: key shared with a MAF). Blocking."""
        keid = onem2m.normalise_keid(keid)
        ctx = cert_context(CERT_SUITES, self.cert, self.key, self.ca, require_peer=True)
        try:
            conn = connect(ctx, self.host, self.port, self.mef_fqdn)
        except TlsError as exc:
            raise KmRefused(0, f"TLS with the MEF failed: {exc}") from None
        if self.mef_fqdn.lower() not in peer_names(conn):
            conn.shutdown()
            raise KmRefused(0, f"the MEF certificate does not name {self.mef_fqdn}")
        status, answer = request_json(
            conn, "GET", f"/fetchCredentials/{quote(keid, safe='@')}/{onem2m.SUID_MAF}", self.mef_fqdn
        )
        if status != 200 or not isinstance(answer, dict) or not answer.get("status"):
            why = answer.get("errorString") if isinstance(answer, dict) else str(answer)
            raise KmRefused(status, str(why))
        return KmCredential(
            bytes.fromhex(str(answer["credential"])),
            str(answer["kmId"]),
            str(answer["enroleeId"]),
            str(answer["lifetime"]),
        )
