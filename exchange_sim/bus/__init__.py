"""The MQTT event bus: every core event published to a broker (aiomqtt), never blocking the core.

``topics`` says which topic and payload each message gets (the documented wire format),
``publisher`` runs the bounded buffer and the reconnect loop, ``settings`` holds the broker
settings. ``BusError`` is the one error root.
"""

from .errors import BusConfigError, BusError
from .publisher import MqttPublisher, PublisherStatus
from .settings import BusConfig
from .topics import Outgoing, TopicMapper

__all__ = ["BusConfig", "BusConfigError", "BusError", "MqttPublisher", "Outgoing", "PublisherStatus",
           "TopicMapper"]
