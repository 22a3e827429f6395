"""Fixtures for the feed tests: a mosquitto the test may restart (mqtt_url is in tests/conftest.py)."""

import pytest

from tests.support.mqtt_broker import Mosquitto


@pytest.fixture
def own_mosquitto(tmp_path):
    """A mosquitto of our own that the test may stop and start again."""
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
