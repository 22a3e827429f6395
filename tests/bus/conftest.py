"""Broker fixtures for the MQTT bus tests: a real mosquitto, or the one at MQTT_URL."""

from __future__ import annotations

import pytest

from tests.support.mqtt_broker import Mosquitto


@pytest.fixture
def mosquitto(tmp_path):
    """A mosquitto of our own (it can be stopped and restarted by the test)."""
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
