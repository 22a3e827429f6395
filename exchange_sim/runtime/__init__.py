"""The asyncio runtime around the pure core: ``Node`` owns the exchange in one consumer task."""

from .node import Node, NodeError, NodeStopped

__all__ = ["Node", "NodeError", "NodeStopped"]
