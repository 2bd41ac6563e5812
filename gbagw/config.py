"""Configuration loading: embedded defaults, a TOML file, then ``GBAGW_<SECTION>_<KEY>`` overrides.

Each service gets its own typed config object; validation errors name the key and the problem.
"""

from __future__ import annotations

import copy
import math
import os
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bsf.config import BsfConfig, NafEntry
from bsf.mef.config import EnroleeEntry, MefConfig
from gba import digest, onem2m
from gba.btid import is_fqdn
from gba.zn_sbi import gsid_uint32
from hss_stub.config import HssConfig
from naf.config import BsfRoute, NafConfig

ENV_PREFIX = "GBAGW_"
# The --data-dir of every command when the option is not given: a variable, but not a configuration key.
DATA_DIR_ENV = "GBAGW_DATA_DIR"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


def _defaults() -> dict[str, Any]:
    text = resources.files("gbagw").joinpath("defaults.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


# The lists of tables (``[[bsf.nafs]]``) and the TOML type of each key of their entries; every other
# list holds strings. A new table list is named here, or the loader refuses its tables.
TABLE_LISTS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "bsf.nafs": {"fqdn": str, "diameter_host": str, "group": str, "required_gsids": list, "send_impi": bool},
    "mef.enrolees": {"enrolee_id": str, "targets": list, "kpm_id": str, "kpm": str, "cert_name": str},
    "naf.bsf_realms": {"realm": str, "host": str, "port": int, "sbi_url": str, "soap_url": str},
}
_TOML_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "true or false"),  # before int: a bool is an int in Python, never in TOML
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (dict, "a table"),
)


def _kind(value: Any) -> str:
    """What a TOML value is, for an error line (a value of a credential key is never shown)."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}
    return next(
        (k for t, k in kinds.items() if isinstance(value, t)), "a table" if isinstance(value, dict) else "a date"
    )


def _shape_problem(name: str, default: Any, value: Any) -> str | None:
    """Why ``value`` cannot stand where the embedded default has ``default`` (same TOML type; an integer
    does for a number), as one line naming the key; None when it fits. The values themselves are
    checked later, by each service's config function."""
    if isinstance(value, bool) != isinstance(default, bool):
        fits = False
    elif isinstance(default, float):
        fits = isinstance(value, int | float)
    elif isinstance(default, list):
        return _list_problem(name, value)
    else:
        fits = isinstance(value, type(default))
    if fits:
        return None
    want = next(w for t, w in _TOML_TYPES if isinstance(default, t))
    shown = "" if name in SECRET_KEYS or isinstance(value, dict | list) else f" ({value!r:.60})"
    return f"{name} must be {want}, got {_kind(value)}{shown}"


def _list_problem(name: str, value: Any) -> str | None:
    entry_types = TABLE_LISTS.get(name)
    if entry_types is None:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"{name} must be a list of strings, got {_kind(value)}"
        return None
    if not isinstance(value, list):
        return f"{name} must be a list of tables ([[{name}]]), got {_kind(value)}"
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            return f"{name}[{i}] must be a table, got {_kind(entry)}"
        for key, want in entry_types.items():
            if key in entry and not _fits(entry[key], want):
                return (
                    f"{name}[{i}].{key} must be {next(w for t, w in _TOML_TYPES if t is want)}, got {_kind(entry[key])}"
                )
    return None


def _fits(value: Any, want: type | tuple[type, ...]) -> bool:
    return isinstance(value, want) and (want is bool or not isinstance(value, bool))


def _merge(
    base: dict[str, Any], override: Mapping[str, Any], origin: str, sources: dict[str, str], where: str = ""
) -> None:
    for key, value in override.items():
        if key not in base:
            raise ConfigError(f"unknown configuration key {where}{key}")
        if problem := _shape_problem(f"{where}{key}", base[key], value):
            raise ConfigError(f"{problem} ({origin})")
        if isinstance(base[key], dict):
            _merge(base[key], value, origin, sources, f"{where}{key}.")
        else:
            base[key] = value
            sources[f"{where}{key}"] = origin


def _coerce(name: str, default: Any, text: str) -> Any:
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be a boolean, got {text!r}")
    if isinstance(default, int):
        try:
            return int(text, 0)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {text!r}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {text!r}") from None
    if isinstance(default, list):
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str], sources: dict[str, str]) -> None:
    for var, text in environ.items():
        if not var.startswith(ENV_PREFIX) or var == DATA_DIR_ENV:
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("_")
        if section not in raw or not isinstance(raw[section], dict) or key not in raw[section]:
            raise ConfigError(f"environment variable {var} names no configuration key")
        if isinstance(raw[section][key], list) and raw[section][key] and isinstance(raw[section][key][0], dict):
            raise ConfigError(f"{var}: {section}.{key} is a table list; set it in the TOML file")
        raw[section][key] = _coerce(f"{section}.{key}", raw[section][key], text)
        sources[f"{section}.{key}"] = f"env {var}"


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    raw: dict[str, Any]
    data_dir: Path
    # Where each value that is not the embedded default comes from: "file PATH" or "env GBAGW_...".
    sources: Mapping[str, str] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw[name]
        assert isinstance(value, dict)
        return value


def load(path: Path | None, data_dir: Path | None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    raw = copy.deepcopy(_defaults())
    sources: dict[str, str] = {}
    if path is not None:
        try:
            override = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        _merge(raw, override, f"file {path}", sources)
    _apply_env(raw, os.environ if environ is None else environ, sources)
    _refuse_hidden(raw, "")
    return LoadedConfig(raw, data_dir or Path("var"), sources)


# Credentials that may sit in the configuration: `gbagw config show` prints them, and the password of
# any URL (a Redis store's, say), as HIDDEN.
SECRET_KEYS = frozenset({"naf.sbi_token", "mef.enrolees.kpm"})
HIDDEN = "<hidden>"


def _hide_url_password(value: str) -> str:
    """``redis://user:secret@host/0`` -> ``redis://user:<hidden>@host/0`` (bsf.store, naf.sbi_url, ...)."""
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed [IPv6 address: it may still hold a password
        return "<a URL that does not parse>"
    if parts.password is None:
        return value
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{HIDDEN}@{host}"))


def effective_value(value: str) -> str:
    """A string value as `gbagw config show` prints it (the password of a URL hidden)."""
    return _hide_url_password(value)


def effective(cfg: LoadedConfig) -> dict[str, Any]:
    """The merged configuration as the services read it: ``<data-dir>`` filled in, credentials hidden."""

    def walk(value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{where}.{k}" if where else k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, where) for v in value]
        if where in SECRET_KEYS and value:
            return HIDDEN
        if isinstance(value, str):
            return _hide_url_password(value.replace("<data-dir>", str(cfg.data_dir)))
        return value

    result: dict[str, Any] = walk(cfg.raw, "")
    return result


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str
    format: str


def log_config(cfg: LoadedConfig) -> LogConfig:
    s = cfg.section("log")
    level = str(s["level"]).upper()
    return LogConfig(
        level=_choice("log.level", level, ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
        format=_choice("log.format", s["format"], ("json", "text")),
    )


def _refuse_hidden(value: Any, where: str) -> None:
    """A credential as `gbagw config show` prints it must not load as if it were the credential."""
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_hidden(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_hidden(item, f"{where}[{i}]")
    elif isinstance(value, str) and (value == HIDDEN or f":{HIDDEN}@" in value):
        raise ConfigError(f"{where} holds {HIDDEN!r}, as `gbagw config show` prints it: put the credential back")


def unknown_keys(table: Mapping[str, Any], known: tuple[str, ...]) -> str | None:
    """A problem line for keys of a table-list entry that nothing reads (a typo would pass silently)."""
    extra = sorted(set(table) - set(known))
    if not extra:
        return None
    return f"unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} (known: {', '.join(known)})"


def _path(cfg: LoadedConfig, name: str, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a path")
    value = value.replace("<data-dir>", str(cfg.data_dir))
    if value.startswith("sqlite:///"):
        value = value[len("sqlite:///") :]
    elif "://" in value:
        raise ConfigError(f"{name}: only sqlite:/// URLs or plain paths are supported here, got {value!r}")
    return Path(value)


def _paths(cfg: LoadedConfig, name: str, value: Any) -> tuple[Path, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list of paths")
    return tuple(_path(cfg, f"{name}[{i}]", v) for i, v in enumerate(value))


def _optional_path(cfg: LoadedConfig, name: str, value: Any) -> Path | None:
    return _path(cfg, name, value) if value else None


def _optional_input(cfg: LoadedConfig, name: str, value: Any) -> Path | None:
    """A file the service reads at start (certificate, key, CA, JWKS): checked now, named by its key."""
    path = _optional_path(cfg, name, value)
    if path is not None:
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
        except ValueError:  # a NUL in the path
            raise ConfigError(f"{name}: not a usable path, got {str(path)!r}") from None
    return path


def check_tls(pair: tuple[str, Path | None, str, Path | None], ca: tuple[str, Path | None] = ("", None)) -> None:
    """Load a certificate chain with its key (and a CA file) as the listener will: a bad file is a config error."""
    cert_name, cert, key_name, key = pair
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if cert is not None and key is not None:
        try:
            # An empty passphrase: an encrypted key fails here instead of prompting on a terminal.
            ctx.load_cert_chain(cert, key, password=lambda: b"")
        except ssl.SSLError as exc:
            detail = f" ({exc.reason})" if exc.reason else ""
            raise ConfigError(
                f"{cert_name} / {key_name}: not a PEM certificate chain and its unencrypted private key{detail}"
            ) from None
    ca_name, ca_file = ca
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:
            detail = f" ({exc.reason})" if exc.reason else ""
            raise ConfigError(f"{ca_name}: not a PEM CA certificate file{detail}") from None


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _port(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be a TCP port (0-65535), got {value!r}")
    return value


def _gsids(name: str, value: Any) -> tuple[str, ...]:
    """GSIDs as TS 29.309 GsIds (Uint32, the one typed definition; Diameter and SOAP carry any string):
    the BSF serves Nbsp_GBA too and a NAF may switch to it, so a GSID that JSON cannot carry is refused
    here rather than at the first request. A TOML integer or a canonical decimal string."""
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list of GSIDs (integers 0-4294967295), got {value!r}")
    out = []
    for g in value:
        text = str(g) if isinstance(g, int) and not isinstance(g, bool) else g
        if not isinstance(text, str) or gsid_uint32(text) is None:
            raise ConfigError(f"{name}: GSID {g!r} is not an integer 0-4294967295 (TS 29.309 GsId, Uint32)")
        out.append(text)
    return tuple(out)


def _api_prefix(name: str, value: Any) -> str:
    """The path part of an {apiRoot} (TS 29.501 4.4.1): "" or "/segment[/segment...]", no trailing "/"."""
    if not isinstance(value, str) or (value and (not value.startswith("/") or value.endswith("/"))):
        raise ConfigError(f'{name} must be "" or a path like "/bsf-1" (no trailing /), got {value!r}')
    if any(c in value for c in "?#% ") or "//" in value:
        raise ConfigError(f"{name} must be a plain path without ?, #, %, spaces or //, got {value!r}")
    return value


def _fqdn(name: str, value: Any) -> str:
    if not isinstance(value, str) or not is_fqdn(value):
        raise ConfigError(f"{name} must be a fully qualified domain name, got {value!r}")
    return value


def _non_negative(name: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def _positive(name: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < math.inf:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def _seconds(name: str, value: Any, *, zero: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (value == 0 and not zero):
        what = "a number of seconds >= 0 (0 = no bound)" if zero else "a positive number of seconds"
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    return value


def _ub_qop(value: Any) -> tuple[str, ...]:
    """bsf.ub_qop: "auth-int", "auth" or both, comma separated, in the order offered (RFC 2617 qop-options)."""
    items = [q.strip() for q in value.split(",")] if isinstance(value, str) else []
    if not items or any(q not in digest.QOPS for q in items) or len(set(items)) != len(items):
        raise ConfigError(f"bsf.ub_qop must be auth-int, auth or both comma separated, got {value!r}")
    return tuple(items)


def hss_config(cfg: LoadedConfig) -> HssConfig:
    s = cfg.section("hss")
    peers = s["allowed_peers"]
    if not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
        raise ConfigError("hss.allowed_peers must be a list of Diameter identities")
    return HssConfig(
        fqdn=_fqdn("hss.fqdn", s["fqdn"]),
        realm=_fqdn("hss.realm", s["realm"]),
        zh_host=str(s["zh_host"]),
        zh_port=_port("hss.zh_port", s["zh_port"]),
        db=_path(cfg, "hss.db", s["db"]),
        kek_file=_path(cfg, "hss.kek_file", s["kek_file"]),
        allowed_peers=tuple(peers) or None,
        watchdog_interval=_positive("hss.watchdog_interval", s["watchdog_interval"]),
        max_connections=_count("hss.max_connections", s["max_connections"]),
        write_timeout=_positive("hss.write_timeout", s["write_timeout"]),
        admin_port=_port("hss.admin_port", s["admin_port"]),
    )


def bsf_config(cfg: LoadedConfig) -> BsfConfig:
    s = cfg.section("bsf")
    store = str(s["store"]).replace("<data-dir>", str(cfg.data_dir))
    if not store.startswith(("sqlite:///", "redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"bsf.store must be sqlite:///PATH or redis://HOST:PORT/DB, got {_hide_url_password(store)!r}"
        )
    lifetime = _seconds("bsf.key_lifetime", s["key_lifetime"])
    nafs = []
    for i, n in enumerate(s["nafs"]):
        if not isinstance(n, dict) or "fqdn" not in n:
            raise ConfigError(f"bsf.nafs[{i}] needs at least fqdn")
        keys = ("fqdn", "diameter_host", "group", "required_gsids", "allowed_gsids", "send_impi")
        if problem := unknown_keys(n, keys):
            raise ConfigError(f"bsf.nafs[{i}]: {problem}")
        nafs.append(
            NafEntry(
                fqdn=_fqdn(f"bsf.nafs[{i}].fqdn", n["fqdn"]),
                diameter_host=_fqdn(f"bsf.nafs[{i}].diameter_host", n.get("diameter_host", n["fqdn"])),
                group=n.get("group"),
                required_gsids=_gsids(f"bsf.nafs[{i}].required_gsids", n.get("required_gsids", [])),
                allowed_gsids=(
                    _gsids(f"bsf.nafs[{i}].allowed_gsids", n["allowed_gsids"]) if "allowed_gsids" in n else None
                ),
                send_impi=bool(n.get("send_impi", True)),
            )
        )
    zn_peers = s["zn_peers"]
    if not isinstance(zn_peers, list) or not all(isinstance(p, str) for p in zn_peers):
        raise ConfigError("bsf.zn_peers must be a list of Diameter identities")
    if bool(s["ub_tls_cert"]) != bool(s["ub_tls_key"]):
        raise ConfigError("bsf.ub_tls_cert and bsf.ub_tls_key go together")
    if bool(s["zn_tls_cert"]) != bool(s["zn_tls_key"]):
        raise ConfigError("bsf.zn_tls_cert and bsf.zn_tls_key go together")
    config = BsfConfig(
        fqdn=_fqdn("bsf.fqdn", s["fqdn"]),
        realm=_fqdn("bsf.realm", s["realm"]),
        ub_host=str(s["ub_host"]),
        ub_port=_port("bsf.ub_port", s["ub_port"]),
        zn_host=str(s["zn_host"]),
        zn_port=_port("bsf.zn_port", s["zn_port"]),
        key_lifetime=lifetime,
        max_key_lifetime=_seconds("bsf.max_key_lifetime", s["max_key_lifetime"], zero=True),
        tmpi_lifetime=_seconds("bsf.tmpi_lifetime", s["tmpi_lifetime"]),
        ub_qop=_ub_qop(s["ub_qop"]),
        store=store,
        store_busy_timeout=_positive("bsf.store_busy_timeout", s["store_busy_timeout"]),
        kek_file=_path(cfg, "bsf.kek_file", s["kek_file"]),
        kek_previous_files=_paths(cfg, "bsf.kek_previous_files", s["kek_previous_files"]),
        hss_host=str(s["hss_host"]),
        hss_port=_port("bsf.hss_port", s["hss_port"]),
        hss_realm=_fqdn("bsf.hss_realm", s["hss_realm"]),
        challenge_lifetime=int(_positive("bsf.challenge_lifetime", s["challenge_lifetime"])),
        zh_timeout=_positive("bsf.zh_timeout", s["zh_timeout"]),
        zh_sip_number_auth_items=_bool("bsf.zh_sip_number_auth_items", s["zh_sip_number_auth_items"]),
        hss_reconnect_interval=_positive("bsf.hss_reconnect_interval", s["hss_reconnect_interval"]),
        ub_idle_timeout=_positive("bsf.ub_idle_timeout", s["ub_idle_timeout"]),
        ub_request_timeout=_positive("bsf.ub_request_timeout", s["ub_request_timeout"]),
        ub_max_connections=_count("bsf.ub_max_connections", s["ub_max_connections"]),
        zn_max_connections=_count("bsf.zn_max_connections", s["zn_max_connections"]),
        zn_write_timeout=_positive("bsf.zn_write_timeout", s["zn_write_timeout"]),
        nafs=tuple(nafs),
        zn_peers=tuple(zn_peers) or None,
        zn_proxies=tuple(str(x) for x in s["zn_proxies"]),
        admin_port=_port("bsf.admin_port", s["admin_port"]),
        gauge_interval=_positive("bsf.gauge_interval", s["gauge_interval"]),
        sbi_port=_port("bsf.sbi_port", s["sbi_port"]),
        sbi_api_prefix=_api_prefix("bsf.sbi_api_prefix", s["sbi_api_prefix"]),
        soap_port=_port("bsf.soap_port", s["soap_port"]),
        zn_tls_cert=_optional_input(cfg, "bsf.zn_tls_cert", s["zn_tls_cert"]),
        zn_tls_key=_optional_input(cfg, "bsf.zn_tls_key", s["zn_tls_key"]),
        zn_tls_ca=_optional_input(cfg, "bsf.zn_tls_ca", s["zn_tls_ca"]),
        zn_tls_port=_port("bsf.zn_tls_port", s["zn_tls_port"]),
        ub_tls_cert=_optional_input(cfg, "bsf.ub_tls_cert", s["ub_tls_cert"]),
        ub_tls_key=_optional_input(cfg, "bsf.ub_tls_key", s["ub_tls_key"]),
        rate_per_impi=_non_negative("bsf.rate_per_impi", s["rate_per_impi"]),
        rate_burst_impi=int(_positive("bsf.rate_burst_impi", s["rate_burst_impi"])),
        rate_per_source=_non_negative("bsf.rate_per_source", s["rate_per_source"]),
        rate_burst_source=int(_positive("bsf.rate_burst_source", s["rate_burst_source"])),
        max_pending_challenges=int(_non_negative("bsf.max_pending_challenges", s["max_pending_challenges"])),
        sbi_oauth_jwks=_optional_input(cfg, "bsf.sbi_oauth_jwks", s["sbi_oauth_jwks"]),
        sbi_oauth_audience=str(s["sbi_oauth_audience"]) or None,
    )
    check_tls(("bsf.ub_tls_cert", config.ub_tls_cert, "bsf.ub_tls_key", config.ub_tls_key))
    check_tls(
        ("bsf.zn_tls_cert", config.zn_tls_cert, "bsf.zn_tls_key", config.zn_tls_key),
        ("bsf.zn_tls_ca", config.zn_tls_ca),
    )
    return config


def _onem2m_ua_id(name: str, value: Any) -> bytes:
    try:
        return onem2m.parse_ua_id(value if isinstance(value, str) else repr(value))
    except onem2m.OneM2MError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _url(name: str, value: Any) -> str | None:
    if value is None:
        return None
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:  # e.g. an unclosed [IPv6 address
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {value!r}")
    return str(value)


def _bsf_realms(entries: Any, home: str) -> tuple[BsfRoute, ...]:
    """``naf.bsf_realms``: the BSFs (or Zn-Proxies) of realms other than the home ``naf.bsf_realm``."""
    if not isinstance(entries, list):
        raise ConfigError("naf.bsf_realms must be a list of tables (realm, host, port, sbi_url, soap_url)")
    routes: list[BsfRoute] = []
    seen = {home.lower()}
    for i, e in enumerate(entries):
        where = f"naf.bsf_realms[{i}]"
        if not isinstance(e, dict):
            raise ConfigError(f"{where} must be a table with realm, host, port")
        if problem := unknown_keys(e, ("realm", "host", "port", "sbi_url", "soap_url")):
            raise ConfigError(f"{where}: {problem}")
        if "realm" not in e or "host" not in e or "port" not in e:
            raise ConfigError(f"{where} needs realm, host and port")
        realm = _fqdn(f"{where}.realm", e["realm"])
        if realm.lower() in seen:
            raise ConfigError(f"{where}.realm {realm!r} is configured twice (naf.bsf_realm is the home realm)")
        seen.add(realm.lower())
        host = e["host"]
        if not isinstance(host, str) or not host:
            raise ConfigError(f"{where}.host must be a host name or address, got {host!r}")
        routes.append(
            BsfRoute(
                realm,
                host,
                _port(f"{where}.port", e["port"]),
                _url(f"{where}.sbi_url", e.get("sbi_url")),
                _url(f"{where}.soap_url", e.get("soap_url")),
            )
        )
    return tuple(routes)


def naf_config(cfg: LoadedConfig) -> NafConfig:
    s = cfg.section("naf")
    if bool(s["tls_cert"]) != bool(s["tls_key"]):
        raise ConfigError("naf.tls_cert and naf.tls_key go together")
    if bool(s["ua_tls_cert"]) != bool(s["ua_tls_key"]):
        raise ConfigError("naf.ua_tls_cert and naf.ua_tls_key go together")
    config = NafConfig(
        fqdn=_fqdn("naf.fqdn", s["fqdn"]),
        realm=_fqdn("naf.realm", s["realm"]),
        host=str(s["host"]),
        port=_port("naf.port", s["port"]),
        bsf_host=str(s["bsf_host"]),
        bsf_port=_port("naf.bsf_port", s["bsf_port"]),
        bsf_realm=_fqdn("naf.bsf_realm", s["bsf_realm"]),
        gba_u_aware=bool(s["gba_u_aware"]),
        gsids=_gsids("naf.gsids", s["gsids"]),
        zn_timeout=_positive("naf.zn_timeout", s["zn_timeout"]),
        admin_port=_port("naf.admin_port", s["admin_port"]),
        zn_via=_choice("naf.zn_via", s["zn_via"], ("diameter", "sbi", "soap")),
        sbi_url=str(s["sbi_url"]),
        soap_url=str(s["soap_url"]),
        sbi_token=str(s["sbi_token"]) or None,
        tls_cert=_optional_input(cfg, "naf.tls_cert", s["tls_cert"]),
        tls_key=_optional_input(cfg, "naf.tls_key", s["tls_key"]),
        tls_ca=_optional_input(cfg, "naf.tls_ca", s["tls_ca"]),
        tls_server_name=str(s["tls_server_name"]) or None,
        bsf_tls=bool(s["bsf_tls"]),
        ua_tls_cert=_optional_input(cfg, "naf.ua_tls_cert", s["ua_tls_cert"]),
        ua_tls_key=_optional_input(cfg, "naf.ua_tls_key", s["ua_tls_key"]),
        bsf_realms=_bsf_realms(s["bsf_realms"], _fqdn("naf.bsf_realm", s["bsf_realm"])),
        onem2m_ua_id=_onem2m_ua_id("naf.onem2m_ua_id", s["onem2m_ua_id"]),
    )
    if config.bsf_tls and (config.tls_ca is None or config.tls_cert is None):
        # RFC 6733 13.1: mutual authentication; the NAF checks the BSF and proves itself with its certificate.
        raise ConfigError("naf.bsf_tls needs naf.tls_ca (to check the BSF) and naf.tls_cert / naf.tls_key")
    check_tls(("naf.tls_cert", config.tls_cert, "naf.tls_key", config.tls_key), ("naf.tls_ca", config.tls_ca))
    check_tls(("naf.ua_tls_cert", config.ua_tls_cert, "naf.ua_tls_key", config.ua_tls_key))
    return config


def mef_config(cfg: LoadedConfig) -> MefConfig:
    s = cfg.section("mef")
    lifetime = s["ke_lifetime"]
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        raise ConfigError(f"mef.ke_lifetime must be a positive number of seconds, got {lifetime!r}")
    enrolees = []
    for i, e in enumerate(s["enrolees"]):
        where = f"mef.enrolees[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("enrolee_id"), str):
            raise ConfigError(f"{where} needs enrolee_id")
        if problem := unknown_keys(e, ("enrolee_id", "targets", "kpm_id", "kpm", "cert_name")):
            raise ConfigError(f"{where}: {problem}")
        targets = e.get("targets", [])
        if not isinstance(targets, list):
            raise ConfigError(f"{where}.targets must be a list of MAF FQDNs")
        kpm = None
        if "kpm" in e:
            try:
                kpm = bytes.fromhex(str(e["kpm"]))
            except ValueError:
                raise ConfigError(f"{where}.kpm must be hex") from None
            if not 16 <= len(kpm) <= 64 or "kpm_id" not in e:
                raise ConfigError(f"{where}: kpm must be 16-64 octets and come with kpm_id")
        if kpm is None and "cert_name" not in e:
            raise ConfigError(f"{where} needs kpm_id + kpm or cert_name")
        enrolees.append(
            EnroleeEntry(
                enrolee_id=e["enrolee_id"],
                targets=tuple(_fqdn(f"{where}.targets", t) for t in targets),
                kpm_id=str(e["kpm_id"]) if "kpm_id" in e else None,
                kpm=kpm,
                cert_name=str(e["cert_name"]) if "cert_name" in e else None,
            )
        )
    return MefConfig(
        fqdn=_fqdn("mef.fqdn", s["fqdn"]),
        host=str(s["host"]),
        psk_port=_port("mef.psk_port", s["psk_port"]),
        cert_port=_port("mef.cert_port", s["cert_port"]),
        maf_port=_port("mef.maf_port", s["maf_port"]),
        admin_port=_port("mef.admin_port", s["admin_port"]),
        ke_lifetime=lifetime,
        cert_file=_path(cfg, "mef.cert_file", s["cert_file"]),
        key_file=_path(cfg, "mef.key_file", s["key_file"]),
        ca_file=_path(cfg, "mef.ca_file", s["ca_file"]),
        enrolees=tuple(enrolees),
        max_connections=_count("mef.max_connections", s["max_connections"]),
        handshake_timeout=_positive("mef.handshake_timeout", s["handshake_timeout"]),
        request_timeout=_positive("mef.request_timeout", s["request_timeout"]),
    )


def check_mef_files(mef: MefConfig) -> None:
    """The MEF's certificate, key and trust anchors, loaded as its TLS listeners will load them.

    Not part of :func:`mef_config`: ``gbagw up`` creates a lab PKI when they are all missing."""
    for name, f in (("mef.cert_file", mef.cert_file), ("mef.key_file", mef.key_file), ("mef.ca_file", mef.ca_file)):
        if not f.exists():
            raise ConfigError(
                f"{name}: {f} is missing; create a lab PKI with: gbagw mef gen-test-pki --out {f.parent} "
                "(gbagw up makes one itself)"
            )
    check_tls(("mef.cert_file", mef.cert_file, "mef.key_file", mef.key_file), ("mef.ca_file", mef.ca_file))
