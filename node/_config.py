"""Node configuration: one TOML file, every option documented in docs/CONFIG.md.

Precedence, lowest first: built-in defaults, ``<home>/shinyo.toml`` (or the file
given with ``--config``), then command-line options.  Unknown sections or keys
are errors, not warnings: a misspelt option that silently does nothing is the
worst kind of configuration bug.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from shinyo import ShinyoError

__all__ = ["CONFIG_FILE", "ConfigError", "NodeConfig", "default_home", "load_config",
           "parse_address"]

CONFIG_FILE = "shinyo.toml"
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ShinyoError):
    """The configuration is unusable; the message names the file, key and fix."""


def default_home() -> Path:
    """The platform's per-user data directory (e.g. ~/.local/share/shinyo)."""
    return Path(platformdirs.user_data_dir("shinyo", appauthor=False))


def parse_address(text: str, *, what: str = "address") -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[::1]:7400``) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} {text!r} is not host:port (for example 127.0.0.1:7400)")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """Every option of a node.  Section and key in the TOML file: ``[section] key``."""

    home: Path
    # [node]
    log_level: str = "info"
    log_json: bool = False
    # [identity]
    key_file: str = "identity.key"
    insecure_plaintext_key: bool = False
    # [network]
    listen: str = "127.0.0.1:7400"
    bootstrap: tuple[str, ...] = ()
    max_peers: int = 32
    max_inbound_per_host: int = 0
    """Inbound connections from one source host; 0: an eighth of the node's
    connections, at least 2 (spec/transport.md 9.3).  Raise it for peers behind
    one NAT address."""
    sync_interval: float = 30.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    idle_timeout: float = 60.0
    peer_exchange: bool = True
    # [store]
    synchronous: str = "NORMAL"
    # [verify]
    processes: int = -1
    """Worker processes checking entry signatures in bulk (node/_verifier.py);
    -1: one per core on a machine with more than one, 0: none (threads)."""
    # [control]
    control_socket: str = "control.sock"

    def __post_init__(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, "
                              f"not {self.log_level!r}")
        parse_address(self.listen, what="listen")
        for peer in self.bootstrap:
            parse_address(peer, what="bootstrap peer")
        if not 1 <= self.max_peers <= 1000:
            raise ConfigError("max_peers must be between 1 and 1000")
        if not 0 <= self.max_inbound_per_host <= self.max_connections:
            raise ConfigError(f"max_inbound_per_host must be between 0 (automatic) and "
                              f"{self.max_connections}, the node's connections for "
                              f"max_peers = {self.max_peers}")
        for name in ("sync_interval", "reconnect_min", "reconnect_max", "idle_timeout"):
            if not 0 < getattr(self, name) <= 86_400:
                raise ConfigError(f"{name} must be a number of seconds in (0, 86400]")
        if self.reconnect_min > self.reconnect_max:
            raise ConfigError("reconnect_min must not exceed reconnect_max")
        if not -1 <= self.processes <= 64:
            raise ConfigError("processes must be -1 (one per core), 0 (check in threads) "
                              "or a number of worker processes up to 64")
        if self.synchronous not in ("NORMAL", "FULL"):
            raise ConfigError("synchronous must be NORMAL (survives a crashed process) or "
                              "FULL (also survives power loss)")

    @property
    def max_connections(self) -> int:
        """QUIC connections at once, inbound and outbound, of any state."""
        return max(2 * self.max_peers, 8)

    @property
    def inbound_per_host(self) -> int:
        """:attr:`max_inbound_per_host`, with 0 resolved (spec/transport.md 9.3)."""
        return self.max_inbound_per_host or max(2, self.max_connections // 8)

    @property
    def resolved_verify_processes(self) -> int:
        """:attr:`processes` with -1 resolved: one per core if there are two or more."""
        if self.processes >= 0:
            return self.processes
        cores = os.cpu_count() or 1
        return cores if cores > 1 else 0

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_address(self.listen)

    @property
    def bootstrap_addresses(self) -> list[tuple[str, int]]:
        return [parse_address(p) for p in self.bootstrap]

    def path(self, name: str) -> Path:
        """A file named in the config, relative to ``home`` unless absolute."""
        return self.home / Path(name).expanduser()

    def replace(self, **changes: Any) -> NodeConfig:
        return dataclasses.replace(self, **changes)


# Where each option lives in the file.
SECTIONS: dict[str, tuple[str, ...]] = {
    "node": ("log_level", "log_json"),
    "identity": ("key_file", "insecure_plaintext_key"),
    "network": ("listen", "bootstrap", "max_peers", "max_inbound_per_host", "sync_interval",
                "reconnect_min", "reconnect_max", "idle_timeout", "peer_exchange"),
    "store": ("synchronous",),
    "verify": ("processes",),
    "control": ("control_socket",),
}
_TYPES = {f.name: f.type for f in dataclasses.fields(NodeConfig)}


def _check_type(name: str, value: object, where: str) -> object:
    kind = _TYPES[name]
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": type(value) is int,
        "float": type(value) in (int, float),
        "tuple[str, ...]": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[str(kind)]
    if not ok:
        raise ConfigError(f"{where}: {name} must be of type {kind}")
    if isinstance(value, list):
        return tuple(value)
    if str(kind) == "float":
        return float(value)  # type: ignore[arg-type]
    return value


def load_config(home: Path, *, file: Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> NodeConfig:
    """Defaults, then the TOML file (if present), then ``overrides``."""
    values: dict[str, Any] = {}
    path = file if file is not None else home / CONFIG_FILE
    if file is not None or path.exists():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        for section, table in doc.items():
            if section not in SECTIONS or not isinstance(table, dict):
                raise ConfigError(f"{path}: unknown section [{section}] (known: "
                                  f"{', '.join(SECTIONS)}; see docs/CONFIG.md)")
            for key, value in table.items():
                if key not in SECTIONS[section]:
                    raise ConfigError(f"{path}: unknown option {key!r} in [{section}] (known: "
                                      f"{', '.join(SECTIONS[section])})")
                values[key] = _check_type(key, value, f"{path} [{section}]")
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    return NodeConfig(home=home, **values)
