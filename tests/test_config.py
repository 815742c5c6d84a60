"""Node configuration: defaults, the TOML file, overrides, and the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shinyo.node._config import SECTIONS, ConfigError, NodeConfig, load_config, parse_address

DOCS = Path(__file__).resolve().parent.parent / "docs" / "CONFIG.md"


def test_every_option_is_documented_with_its_default(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("```toml")[1].split("```")[0]
    (tmp_path / "shinyo.toml").write_text(block, encoding="utf-8")
    assert load_config(tmp_path) == NodeConfig(home=tmp_path)  # documented values = defaults
    documented = set(re.findall(r"^(\w+) =", block, flags=re.M))
    assert documented == {k for keys in SECTIONS.values() for k in keys}


def test_file_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "shinyo.toml").write_text(
        '[network]\nlisten = "127.0.0.1:9000"\nbootstrap = ["127.0.0.1:9001"]\nmax_peers = 4\n'
        '[node]\nlog_level = "debug"\n', encoding="utf-8")
    c = load_config(tmp_path, overrides={"max_peers": 8, "listen": None})
    assert c.listen_address == ("127.0.0.1", 9000) and c.max_peers == 8
    assert c.bootstrap_addresses == [("127.0.0.1", 9001)] and c.log_level == "debug"


@pytest.mark.parametrize(("toml", "match"), [
    ("[netwrok]\nlisten = 1\n", "unknown section"),
    ("[network]\nlisen = '1:2'\n", "unknown option 'lisen'"),
    ("[network]\nmax_peers = 'many'\n", "max_peers must be of type int"),
    ("[network]\nmax_peers = 0\n", "between 1 and 1000"),
    ("[network]\nmax_peers = 4\nmax_inbound_per_host = 9\n", "between 0 .* and 8"),
    ("[network]\nmax_inbound_per_host = -1\n", "max_inbound_per_host"),
    ("[network]\nlisten = 'nowhere'\n", "host:port"),
    ("[network]\nreconnect_min = 9.0\nreconnect_max = 2.0\n", "reconnect_min"),
    ("[store]\nsynchronous = 'OFF'\n", "NORMAL"),
    ("[node]\nlog_level = 'loud'\n", "log_level"),
    ("not toml [", "not valid TOML"),
])
def test_bad_configs_name_the_problem(tmp_path: Path, toml: str, match: str) -> None:
    (tmp_path / "shinyo.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path)


def test_addresses() -> None:
    assert parse_address("[::1]:7400") == ("::1", 7400)
    with pytest.raises(ConfigError):
        parse_address("127.0.0.1:70000")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(Path("/nonexistent"), file=Path("/nonexistent/x.toml"))


@pytest.mark.parametrize(("max_peers", "option", "per_host"), [
    (2, 0, 2), (32, 0, 8), (1000, 0, 250), (2, 8, 8), (32, 1, 1)])
def test_the_per_host_cap_defaults_to_an_eighth_of_the_connections(
        tmp_path: Path, max_peers: int, option: int, per_host: int) -> None:
    c = load_config(tmp_path, overrides={"max_peers": max_peers, "max_inbound_per_host": option})
    assert c.inbound_per_host == per_host  # spec/transport.md 9.3
