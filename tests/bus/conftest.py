"""Broker fixtures for the MQTT bus tests: a real mosquitto, or the one at MQTT_URL."""

from __future__ import annotations

import pytest

from tests.support.mqtt_broker import Mosquitto, broker_url


@pytest.fixture
def mosquitto(tmp_path):
    """A mosquitto of our own (it can be stopped and restarted by the test)."""
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mqtt_url(tmp_path):
    """MQTT_URL when set (a broker that is already running), else a mosquitto started for the test."""
    url = broker_url()
    if url:
        yield url
        return
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()
