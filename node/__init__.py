"""The shinyo node: a daemon that holds an identity and its chain, talks QUIC
to other nodes, gossips and syncs every entry it learns, and answers a local
control socket (spec/wire.md, spec/transport.md, docs/CONTROL.md).

Embedding is trio-native::

    async with shinyo.node.open_node(config, identity=me) as node:
        entry = node.propose(them, context="market.example", terms=b"...")
        await node.wait_until(lambda: ..., timeout=30)
"""

from ._config import ConfigError, NodeConfig, default_home, load_config
from ._control import ControlClient, ControlError
from ._node import Node, NodeError, open_node

__all__ = [
    "ConfigError",
    "ControlClient",
    "ControlError",
    "Node",
    "NodeConfig",
    "NodeError",
    "default_home",
    "load_config",
    "open_node",
]
