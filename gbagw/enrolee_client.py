"""The Enrolee side of the MEF direct frameworks (TS-0003 8.3.2.1, 8.3.2.2) over real TLS."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from OpenSSL import SSL

from gba import onem2m
from gba.ue import Bootstrap
from gbaio.tls import TlsError, cert_context, connect, install_client_psk, peer_names, request_json, tls12_context

PSK_SUITES = "PSK-AES128-CBC-SHA256:PSK-AES128-GCM-SHA256"
CERT_SUITES = "ECDHE-ECDSA-AES128-CBC-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"


class EnrolmentError(Exception):
    """The MEF refused, or its answer does not match what this Enrolee derived."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    keid: str
    ke: bytes = field(repr=False)
    enrolee_id: str
    expires: str


def _enrol(conn: SSL.Connection, mef_fqdn: str) -> Enrolment:
    # TS-0003 10.3.1 / RFC 5705: the same export the MEF makes, with no context.
    material = conn.export_keying_material(onem2m.EXPORT_LABEL_BOOTSTRAP, onem2m.EXPORT_LEN, None)
    status, answer = request_json(conn, "POST", "/enrolment", mef_fqdn)
    if status != 200 or not isinstance(answer, dict) or not answer.get("status"):
        why = answer.get("errorString") if isinstance(answer, dict) else answer
        raise EnrolmentError(f"MEF refused ({status}): {why}")
    relative, ke = onem2m.split_export(material)
    keid = onem2m.keid(relative, mef_fqdn)
    if onem2m.normalise_keid(str(answer.get("keId", ""))) != keid:
        raise EnrolmentError("the MEF's KeID differs from the one derived here")
    return Enrolment(keid, ke, str(answer.get("enroleeId")), str(answer.get("expires")))


def enrol_psk(host: str, port: int, mef_fqdn: str, kpm_id: str, kpm: bytes) -> Enrolment:
    """Pre-provisioned symmetric key framework: TLS-PSK with psk_identity = KpmID, psk = Kpm."""
    ctx = tls12_context(PSK_SUITES)
    handle = install_client_psk(ctx, lambda _hint: (kpm_id.encode("utf-8"), kpm))
    try:
        conn = connect(ctx, host, port, mef_fqdn)
    except TlsError as exc:
        raise EnrolmentError(f"TLS-PSK handshake with the MEF failed (wrong KpmID or Kpm?): {exc}") from None
    del handle  # the callback has run; the context no longer needs it
    return _enrol(conn, mef_fqdn)


def enrol_cert(host: str, port: int, mef_fqdn: str, cert: Path, key: Path, ca: Path) -> Enrolment:
    """Certificate-based framework: mutual TLS; the MEF certificate must carry ``mef_fqdn``."""
    ctx = cert_context(CERT_SUITES, cert, key, ca, require_peer=True)
    try:
        conn = connect(ctx, host, port, mef_fqdn)
    except TlsError as exc:
        raise EnrolmentError(f"certificate handshake with the MEF failed: {exc}") from None
    if mef_fqdn.lower() not in peer_names(conn):
        conn.shutdown()
        raise EnrolmentError(f"the MEF certificate does not name {mef_fqdn}")
    return _enrol(conn, mef_fqdn)


@dataclass(frozen=True, slots=True)
class GbaKm:
    kmid: str
    km: bytes = field(repr=False)


def km_over_gba(boot: Bootstrap, maf_fqdn: str, ua_id: bytes = onem2m.UA_ID_DEFAULT, *, uicc: bool = False) -> GbaKm:
    """GBA-based framework (TS-0003 8.3.2.3): KmID = KeID = B-TID, Km = Ks_(ext)_NAF, or Ks_int_NAF when
    the client runs in the UICC, for NAF_Id = MAF-FQDN || the oneM2M Ua id profile (gba.onem2m)."""
    me, internal = boot.naf_keys(onem2m.maf_naf_id(maf_fqdn, ua_id))
    if uicc:
        if internal is None:
            raise EnrolmentError("no Ks_int_NAF: this bootstrap is not GBA_U")
        return GbaKm(boot.btid, internal)
    return GbaKm(boot.btid, me)
