"""MEF listeners (TS-0003 8.3.2.1, 8.3.2.2, 8.3.5; API documented in docs/mef-api.md).

- Enrolee over TLS-PSK (psk_identity = KpmID, psk = Kpm) or mutual certificate TLS, then
  ``POST /enrolment``: both sides export 48 octets with label "EXPORTER-oneM2M-Bootstrap" (RFC 5705, no
  context) -> RelativeKeID || Ke; the MEF stores (Ke, KeID) sealed and answers the KeID it derived.
- MAF over mutual TLS with its FQDN certificate: ``GET /fetchCredentials/<KeID>/21`` -> Km for that MAF
  and the Enrolee's CSE-ID/AE-ID, only if the MAF is an authorized Enrolment Target of that Enrolee.

Everything runs on the service's asyncio loop: pyOpenSSL over memory BIOs (gbaio.tls.TlsSession), one
task per connection, caps and deadlines per listener (bsf.mef.listener).
"""

from __future__ import annotations

import datetime as dt
import logging
import resource
from typing import Any
from urllib.parse import unquote

from OpenSSL import SSL

from bsf.mef.config import EnroleeEntry, MefConfig
from bsf.mef.listener import Limits, TlsListener
from bsf.mef.metrics import MefMetrics
from bsf.store import ContextStore, EnrolmentRecord, StoreUnavailable, store_problem
from gba import onem2m
from gbaio.tls import (
    TlsError,
    TlsSession,
    cert_context,
    connection_id,
    install_server_psk,
    peer_names,
    serve_json,
    ssl_id,
    tls12_context,
)

log = logging.getLogger("gbagw.mef")
Reply = tuple[int, dict[str, Any]]
# TS-0003 leaves the MEF's refusal open; one answer for "no such KeID" and "not yours" so that a trusted
# MAF cannot learn which KeIDs exist for other Enrolees (issue 27 class 10).
FD_RESERVE = 64  # descriptors besides the connections: listeners, store, admin listener, logs
KM_REFUSED = (404, "unknown or expired KeID, or this MAF is not an authorized Enrolment Target for it")


def _check_fd_limit(max_connections: int) -> None:
    """Warn when the caps cannot be reached: accept() would fail with EMFILE first (issue 27 class 2)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    need = 3 * max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and need > soft:
        log.warning(
            "mef: 3 listeners x mef.max_connections %d need about %d file descriptors, over the open-files "
            "limit %d: accept() would fail before the caps; lower mef.max_connections or raise LimitNOFILE=",
            max_connections,
            need,
            soft,
        )


def _refuse(status: int, why: str) -> Reply:
    return status, {"status": False, "errorString": why}


class MefService:
    def __init__(self, config: MefConfig, store: ContextStore, metrics: MefMetrics) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self._by_kpm_id = {e.kpm_id: e for e in config.enrolees if e.kpm_id and e.kpm}
        self._by_cert = {e.cert_name.lower(): e for e in config.enrolees if e.cert_name}
        self._psk_peers: dict[int, EnroleeEntry] = {}
        self.listeners: dict[str, TlsListener] = {}
        self.ports: dict[str, int] = {}
        self._psk_ctx = tls12_context(config.psk_suites)
        self._psk_handle = install_server_psk(self._psk_ctx, self._on_psk, hint=None)

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> dict[str, int]:
        c = self.config
        # Both certificate listeners require the MEF certificate, its key and the trust anchors.
        cert_ctx = cert_context(c.cert_suites, c.cert_file, c.key_file, c.ca_file, require_peer=True)
        limits = Limits(c.max_connections, c.handshake_timeout, c.request_timeout)
        _check_fd_limit(c.max_connections)
        for name, port, ctx, serve in (
            ("psk", c.psk_port, self._psk_ctx, self._enrol_psk),
            ("cert", c.cert_port, cert_ctx, self._enrol_cert),
            ("maf", c.maf_port, cert_ctx, self._maf),
        ):
            listener = TlsListener(name, c.host, port, ctx, serve, limits, self.metrics, self._forget)
            self.listeners[name] = listener
            self.ports[name] = await listener.start()
        log.info(
            "MEF %s: enrolee TLS-PSK on %s:%d, certificate on :%d, MAF retrieval on :%d",
            c.fqdn,
            c.host,
            self.ports["psk"],
            self.ports["cert"],
            self.ports["maf"],
        )
        return self.ports

    async def stop(self) -> None:
        for listener in self.listeners.values():
            await listener.stop()

    async def readiness(self) -> str | None:
        """Ready when every listener accepts and the store (the BSF's: KeIDs and Ke live there) answers."""
        if not self.listeners:
            return "MEF listeners not started"
        problems = [p for listener in self.listeners.values() if (p := listener.problem())]
        return "; ".join(problems) if problems else await store_problem(self.store)

    def _forget(self, conn: SSL.Connection) -> None:
        self._psk_peers.pop(connection_id(conn), None)

    # --- Enrolee side -----------------------------------------------------------------------------

    def _on_psk(self, ssl: Any, identity: bytes) -> bytes | None:
        entry = self._by_kpm_id.get(identity.decode("utf-8", "replace"))
        if entry is None or entry.kpm is None:
            log.info("mef: unknown KpmID %r; failing the handshake", identity[:64])
            self.metrics.enrolments.labels("psk", "unknown_enrolee").inc()
            return None
        self._psk_peers[ssl_id(ssl)] = entry  # runs on the loop, inside do_handshake()
        return entry.kpm

    async def _enrol_psk(self, session: TlsSession) -> None:
        conn = session.conn
        entry = self._psk_peers.get(connection_id(conn))
        if entry is None:
            raise TlsError("PSK handshake without a configured Enrolee")

        async def answer(method: str, target: str, _body: bytes) -> Reply:
            return await self._enrol(conn, entry, "psk", method, target)

        await serve_json(session, answer)

    async def _enrol_cert(self, session: TlsSession) -> None:
        conn = session.conn
        names = peer_names(conn)
        entry = next((self._by_cert[n] for n in names if n in self._by_cert), None)

        async def answer(method: str, target: str, _body: bytes) -> Reply:
            if entry is None:
                return _refuse(403, "certificate name is not a configured Enrolee")
            return await self._enrol(conn, entry, "certificate", method, target)

        if entry is None:
            log.info("mef: certificate names %s match no configured Enrolee; nothing stored", sorted(names))
            self.metrics.enrolments.labels("certificate", "unknown_enrolee").inc()
        await serve_json(session, answer)

    async def _enrol(
        self, conn: SSL.Connection, entry: EnroleeEntry, framework: str, method: str, target: str
    ) -> Reply:
        outcome, reply = await self._enrolment(conn, entry, framework, method, target)
        self.metrics.enrolments.labels(framework, outcome).inc()
        return reply

    async def _enrolment(
        self, conn: SSL.Connection, entry: EnroleeEntry, framework: str, method: str, target: str
    ) -> tuple[str, Reply]:
        """(outcome for the metrics, answer)."""
        if (method, target) != ("POST", "/enrolment"):
            return "bad_request", _refuse(404, "use POST /enrolment")
        # TS-0003 10.3.1 / RFC 5705: no context (None, not b"": the two differ in TLS 1.2).
        material = conn.export_keying_material(onem2m.EXPORT_LABEL_BOOTSTRAP, onem2m.EXPORT_LEN, None)
        relative, ke = onem2m.split_export(material)
        keid = onem2m.keid(relative, self.config.fqdn)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        expires = now + dt.timedelta(seconds=self.config.ke_lifetime)
        try:
            await self.store.put_enrolment(
                EnrolmentRecord(keid, ke, entry.enrolee_id, entry.targets, framework, now, expires)
            )
        except StoreUnavailable as exc:
            # Nothing stored, nothing answered: the Enrolee enrols again later, with a fresh Ke.
            log.warning("mef: enrolment of %s not stored, store unavailable: %s", entry.enrolee_id, exc)
            return "store_unavailable", _refuse(503, "enrolment store unavailable, retry later")
        log.info("mef: enrolled %s via %s framework, KeID %s", entry.enrolee_id, framework, keid)
        return "enrolled", (
            200,
            {
                "status": True,
                "keId": keid,
                "enroleeId": entry.enrolee_id,
                "expires": expires.isoformat(),
                "framework": framework,
            },
        )

    # --- MAF side ---------------------------------------------------------------------------------

    async def _maf(self, session: TlsSession) -> None:
        names = peer_names(session.conn)

        async def answer(method: str, target: str, _body: bytes) -> Reply:
            outcome, reply = await self._fetch(names, method, target)
            self.metrics.km.labels(outcome).inc()
            return reply

        await serve_json(session, answer)

    async def _fetch(self, maf_names: set[str], method: str, target: str) -> tuple[str, Reply]:
        """(outcome for the metrics, answer)."""
        parts = target.split("/")
        if method != "GET" or len(parts) != 4 or parts[1] != "fetchCredentials":
            return "bad_request", _refuse(404, "use GET /fetchCredentials/<KeID>/<SUID>")
        if parts[3] != str(onem2m.SUID_MAF):
            return "bad_request", _refuse(400, f"only SUID {onem2m.SUID_MAF} (key shared with a MAF) is served")
        try:
            keid = onem2m.normalise_keid(unquote(parts[2]))
        except onem2m.OneM2MError as exc:
            return "bad_request", _refuse(400, str(exc))
        try:
            rec = await self.store.get_enrolment(keid)
        except StoreUnavailable as exc:
            log.warning("mef: MAF %s asked for KeID %s, store unavailable: %s", sorted(maf_names), keid, exc)
            return "store_unavailable", _refuse(503, "enrolment store unavailable, retry later")
        if rec is None:
            log.info("mef: MAF %s asked for unknown or expired KeID %s", sorted(maf_names), keid)
            return "unknown_keid", _refuse(*KM_REFUSED)
        maf = next((t for t in rec.targets if t.lower() in maf_names), None)
        if maf is None:
            # The operator's log and metrics tell the two cases apart; the MAF's answer does not.
            log.info("mef: MAF %s is not an Enrolment Target of %s; refused", sorted(maf_names), rec.enrolee_id)
            return "not_target", _refuse(*KM_REFUSED)
        log.info("mef: Km for %s issued to MAF %s (KmID %s)", rec.enrolee_id, maf, keid)
        # TS-0003 10.3.2: Km = HMAC-SHA-256(Ke, label || MAF-ID); KmID = KeID.
        return "issued", (
            200,
            {
                "status": True,
                "credential": onem2m.km(rec.ke, maf).hex(),
                "kmId": keid,
                "enroleeId": rec.enrolee_id,
                "lifetime": rec.expires.isoformat(),
                "suid": onem2m.SUID_MAF,
            },
        )


def create_mef(config: MefConfig, store: ContextStore, metrics: MefMetrics | None = None) -> MefService:
    return MefService(config, store, metrics or MefMetrics())
