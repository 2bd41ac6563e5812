"""The GBA key derivation function and NAF key derivations (3GPP TS 33.220 Annex B, Annex H)."""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import unicodedata
from dataclasses import dataclass

FC_GBA = 0x01  # TS 33.220 B.2.2: FC values 0x00-0x0F belong to 33.220; NAF key derivation uses 0x01
UA_ID_LEN = 5


class KdfError(ValueError):
    """A KDF input is out of range."""


def kdf(key: bytes, fc: int, *params: bytes) -> bytes:
    """KDF(Key, S) = HMAC-SHA-256(Key, FC || P0 || L0 || ... || Pn || Ln) (TS 33.220 B.2.0)."""
    if not 0 <= fc <= 0xFE:
        raise KdfError("FC must be one octet")
    parts = [bytes([fc])]
    for p in params:
        if len(p) > 0xFFFF:
            raise KdfError("a KDF parameter is longer than 65535 octets")
        parts.append(p)
        parts.append(len(p).to_bytes(2, "big"))
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def kdf_string(s: str) -> bytes:
    """Character strings enter the KDF as UTF-8 after NFKC normalisation (TS 33.220 B.2.1)."""
    return unicodedata.normalize("NFKC", s).encode("utf-8")


class UaOrg(enum.IntEnum):
    """Organisation octet of a Ua security protocol identifier (TS 33.220 Annex H)."""

    DEFAULT = 0x00
    TGPP = 0x01
    TGPP2 = 0x02
    OMA = 0x03
    GSMA = 0x04
    PRIVATE = 0xFF


class UaProtocol(bytes, enum.Enum):
    """Registered Ua security protocol identifiers (TS 33.220 Annex H)."""

    DEFAULT = bytes.fromhex("0000000000")
    SUBSCRIBER_CERTIFICATE = bytes.fromhex("0100000000")  # TS 33.221
    MBMS = bytes.fromhex("0100000001")  # TS 33.246
    HTTP_DIGEST = bytes.fromhex("0100000002")  # TS 24.109 (HTTP digest, no TLS)
    MBMS_HTTP = bytes.fromhex("0100000003")  # TS 26.237
    MBMS_SIP = bytes.fromhex("0100000004")  # TS 26.237
    GENERIC_PUSH_LAYER = bytes.fromhex("0100000005")  # TS 33.224
    IMS_UE_KMS = bytes.fromhex("0100000006")  # TS 33.328
    TMPI = bytes.fromhex("0100000100")  # TS 33.220 B.4 (BSF_Id for TMPI derivation)


def ua_tls(cipher_suite: int) -> bytes:
    """(0x01,0x00,0x01,yy,zz): TS 33.222 TLS with the negotiated IANA cipher suite yy,zz (Annex H)."""
    if not 0 <= cipher_suite <= 0xFFFF:
        raise KdfError("a TLS cipher suite code is two octets")
    return b"\x01\x00\x01" + cipher_suite.to_bytes(2, "big")


def ua_tls_annex_d(cipher_suite: int) -> bytes:
    """(0x01,0x00,0x02,yy,zz): TS 33.222 Annex D (e.g. HTML form login inside TLS)."""
    if not 0 <= cipher_suite <= 0xFFFF:
        raise KdfError("a TLS cipher suite code is two octets")
    return b"\x01\x00\x02" + cipher_suite.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class NafId:
    """NAF_Id = NAF FQDN || Ua security protocol identifier (TS 33.220 clause 4.5.2, Annex H).

    The FQDN is the one the UE used, without port or scheme; it must be byte-identical at the UE,
    the NAF and the BSF.
    """

    fqdn: str
    ua_id: bytes

    def __post_init__(self) -> None:
        if len(self.ua_id) != UA_ID_LEN:
            raise KdfError("a Ua security protocol identifier is 5 octets")
        if not self.fqdn or len(self.fqdn) > 255 or any(c in self.fqdn for c in ":/ \t\r\n"):
            raise KdfError("NAF FQDN must be a bare host name without port or scheme")

    def encode(self) -> bytes:
        return kdf_string(self.fqdn) + self.ua_id

    @classmethod
    def decode(cls, raw: bytes) -> NafId:
        if len(raw) <= UA_ID_LEN:
            raise KdfError("NAF-Id is too short to carry an FQDN and a Ua identifier")
        try:
            fqdn = raw[:-UA_ID_LEN].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KdfError("NAF FQDN is not UTF-8") from exc
        return cls(fqdn, raw[-UA_ID_LEN:])


def _naf_key(ks: bytes, label: bytes, rand: bytes, impi: str, naf_id: NafId) -> bytes:
    if len(ks) != 32:
        raise KdfError("Ks must be 32 octets (CK || IK)")
    if len(rand) != 16:
        raise KdfError("RAND must be 16 octets")
    return kdf(ks, FC_GBA, label, rand, kdf_string(impi), naf_id.encode())


def ks_naf(ks: bytes, rand: bytes, impi: str, naf_id: NafId) -> bytes:
    """Ks_NAF (GBA_ME) = Ks_ext_NAF (GBA_U) = KDF(Ks, "gba-me", RAND, IMPI, NAF_Id) (TS 33.220 B.3)."""
    return _naf_key(ks, b"gba-me", rand, impi, naf_id)


ks_ext_naf = ks_naf


def ks_int_naf(ks: bytes, rand: bytes, impi: str, naf_id: NafId) -> bytes:
    """Ks_int_NAF = KDF(Ks, "gba-u", RAND, IMPI, NAF_Id) (TS 33.220 B.3)."""
    return _naf_key(ks, b"gba-u", rand, impi, naf_id)


TMPI_DOMAIN = "tmpi.bsf.3gppnetwork.org"  # TS 33.220 B.4: the realm that marks a username as a TMPI
TMPI_OCTETS = 24  # B.4: TEMP is the base64 of the 24 most significant octets of the KDF output


def tmpi(ks: bytes, rand: bytes, impi: str, bsf_fqdn: str) -> str:
    """TMPI = base64(KDF(Ks, "gba-me", RAND, IMPI, BSF_Id)[0..23]) "@tmpi.bsf.3gppnetwork.org" (TS 33.220 B.4).

    BSF_Id is the BSF's DNS name as used in the B-TID followed by the TMPI Ua id (Annex H); for
    GBA_U the Ks_ext_NAF procedure applies, which is the same formula.
    """
    derived = ks_naf(ks, rand, impi, NafId(bsf_fqdn, UaProtocol.TMPI.value))
    return base64.b64encode(derived[:TMPI_OCTETS]).decode("ascii") + "@" + TMPI_DOMAIN


def is_tmpi(username: str) -> bool:
    """TS 33.220 4.5.2 step 2: the BSF tells a TMPI from an IMPI by its structure (its B.4 domain)."""
    _, at, domain = username.rpartition("@")
    return bool(at) and domain.lower() == TMPI_DOMAIN
