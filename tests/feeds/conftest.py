"""Fixtures for the feed tests: an MQTT broker (shared helper in tests/support/mqtt_broker.py)."""

import pytest

from tests.support.mqtt_broker import Mosquitto, broker_url


@pytest.fixture
def mqtt_url(tmp_path):
    """MQTT_URL when set (a broker already running), else a mosquitto started for the test."""
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


@pytest.fixture
def own_mosquitto(tmp_path):
    """A mosquitto of our own that the test may stop and start again."""
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
