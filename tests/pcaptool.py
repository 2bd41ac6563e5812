"""Write Diameter messages into a pcap and decode it with tshark (the independent wire checker)."""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from tests.required_tools import require

LINKTYPE_RAW = 101


def _ip_tcp(payload: bytes, sport: int, dport: int, seq: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x18, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 6, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 2]))
    return ip + tcp + payload


def write_pcap(path: Path, messages: list[bytes], port: int = 3868) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW)]
    seq_a = seq_b = 1
    for i, m in enumerate(messages):
        request = m[4] & 0x80
        if request:
            frame = _ip_tcp(m, 40000, port, seq_a)
            seq_a += len(m)
        else:
            frame = _ip_tcp(m, port, 40000, seq_b)
            seq_b += len(m)
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


@dataclass(frozen=True)
class DecodedAvp:
    code: int
    vendor: int
    flags: int
    name: str


def _pdml(path: Path, ports: list[int]) -> etree._Element:
    """tshark's PDML of the capture, with Diameter decoded on ``ports``."""
    decode_as = [arg for port in ports for arg in ("-d", f"tcp.port=={port},diameter")]
    xml = subprocess.run(
        [require("tshark"), "-r", str(path), *decode_as, "-T", "pdml"], check=True, capture_output=True, timeout=60
    ).stdout
    return etree.fromstring(xml, etree.XMLParser(huge_tree=True, resolve_entities=False))


def decode_with_tshark(path: Path, port: int = 3868) -> tuple[list[DecodedAvp], list[str]]:
    """All AVPs tshark saw (nested too) and any expert/malformed messages."""
    root = _pdml(path, [port])
    avps: list[DecodedAvp] = []
    problems: list[str] = []
    for field in root.iter("field"):
        if field.get("name") == "_ws.malformed":
            problems.append(field.get("showname") or "malformed")
    for proto in root.iter("proto"):
        if proto.get("name") != "diameter":
            continue
        for field in proto.iter("field"):
            name = field.get("name") or ""
            if name.startswith("_ws.expert"):
                problems.append(field.get("showname") or field.get("show") or name)
            if name == "diameter.avp":
                code = flags = vendor = None
                for child in field:
                    cname = child.get("name")
                    if cname == "diameter.avp.code":
                        code = int(child.get("show") or "0")
                    elif cname == "diameter.avp.flags":
                        flags = int(child.get("value") or "0", 16)
                    elif cname == "diameter.avp.vendorId":
                        vendor = int(child.get("show") or "0")
                if code is not None and flags is not None:
                    avps.append(DecodedAvp(code, vendor or 0, flags, field.get("showname") or ""))
    return avps, problems


@dataclass(frozen=True)
class DecodedMessage:
    """One Diameter message as tshark decoded it, with the TCP stream and port it travelled from."""

    stream: int
    src_port: int
    dst_port: int
    command: int
    request: bool
    retransmit: bool  # the T flag (RFC 6733 3)
    end_to_end: int
    origin_host: str | None
    result_code: int | None
    disconnect_cause: int | None


def _show(proto: etree._Element, name: str) -> str | None:
    for field in proto.iter("field"):
        if field.get("name") == name:
            return field.get("show")
    return None


def diameter_messages(path: Path, ports: list[int]) -> tuple[list[DecodedMessage], list[str]]:
    """Every Diameter message in capture order (several may share a TCP segment), and any
    expert/malformed marks."""
    root = _pdml(path, ports)
    messages: list[DecodedMessage] = []
    problems: list[str] = []
    for packet in root.iter("packet"):
        problems += [f.get("showname") or "malformed" for f in packet.iter("field") if f.get("name") == "_ws.malformed"]
        tcp = next((p for p in packet.iter("proto") if p.get("name") == "tcp"), None)
        if tcp is None:
            continue
        stream = int(_show(tcp, "tcp.stream") or "-1")
        sport, dport = int(_show(tcp, "tcp.srcport") or "0"), int(_show(tcp, "tcp.dstport") or "0")
        for proto in packet.iter("proto"):
            if proto.get("name") != "diameter":
                continue
            problems += [
                f.get("showname") or f.get("name") or ""
                for f in proto.iter("field")
                if (f.get("name") or "").startswith("_ws.expert")
            ]
            rc, cause = _show(proto, "diameter.Result-Code"), _show(proto, "diameter.Disconnect-Cause")
            messages.append(
                DecodedMessage(
                    stream,
                    sport,
                    dport,
                    int(_show(proto, "diameter.cmd.code") or "0"),
                    _show(proto, "diameter.flags.request") in ("1", "True"),
                    _show(proto, "diameter.flags.T") in ("1", "True"),
                    int(_show(proto, "diameter.endtoendid") or "0", 0),
                    _show(proto, "diameter.Origin-Host"),
                    int(rc) if rc is not None else None,
                    int(cause) if cause is not None else None,
                )
            )
    return messages, problems
