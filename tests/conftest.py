"""Fixtures shared by every test package."""

import pytest

from tests.support.mqtt_broker import Mosquitto, broker_url


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
