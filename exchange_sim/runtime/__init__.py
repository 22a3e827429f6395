"""The asyncio runtime around the pure core: ``Node`` owns the exchange in one consumer task."""

from .node import InputRefused, Node, NodeError, NodeStopped

__all__ = ["InputRefused", "Node", "NodeError", "NodeStopped"]
