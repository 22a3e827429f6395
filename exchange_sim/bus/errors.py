"""The MQTT bus's errors: one root, ``BusError``; aiomqtt's errors are handled inside the reconnect loop."""

from __future__ import annotations


class BusError(Exception):
    """Root of every MQTT bus error."""


class BusConfigError(BusError):
    """The broker settings cannot work (bad URL, port, TLS files); the message says which and why."""
