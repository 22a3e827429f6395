"""The MQTT bus's settings: broker URL, auth, TLS, topic prefix, buffer bound, backoff.

``BusConfig.from_url("mqtt://user:pass@host:1883")``; ``mqtts://`` turns TLS on (port 8883 by
default). ``BusConfig.from_settings(settings.mqtt)`` reads the ``[mqtt]`` section that
``exchange_sim.config`` validated (``EXSIM_MQTT_URL`` already applied there) and returns None
when no broker is configured.
"""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import BusConfigError


@dataclass(frozen=True, slots=True)
class BusConfig:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca_file: str | None = None  # None: the system's trusted CAs
    tls_insecure: bool = False  # accept any certificate / host name (test brokers only)
    topic_prefix: str = "exchange-sim"
    client_id: str | None = None  # None: the broker assigns one
    buffer_size: int = 10_000  # messages held while the broker is slow or down; oldest dropped beyond
    backoff_min: float = 0.5  # seconds before the first reconnect attempt
    backoff_max: float = 30.0
    publish_timeout: float = 5.0  # seconds to wait for a QoS 1 acknowledgement before calling it down
    keepalive: int = 30
    publish_market: bool = True  # also publish the market data the core consumed

    def __post_init__(self) -> None:
        if not self.host:
            raise BusConfigError("MQTT broker host is empty")
        if not 0 < self.port < 65536:
            raise BusConfigError(f"MQTT broker port {self.port} is not in 1..65535")
        if not self.topic_prefix or self.topic_prefix.startswith("/") or any(c in self.topic_prefix for c in "+#"):
            raise BusConfigError(f"topic prefix {self.topic_prefix!r}: non-empty, no leading '/', no '+' or '#'")
        if self.buffer_size < 1:
            raise BusConfigError(f"buffer_size {self.buffer_size} must be at least 1")
        if not 0 < self.backoff_min <= self.backoff_max:
            raise BusConfigError(f"backoff {self.backoff_min}..{self.backoff_max}: need 0 < min <= max")
        if self.password is not None and self.username is None:
            raise BusConfigError("an MQTT password needs a username")

    @classmethod
    def from_url(cls, url: str, **options: Any) -> BusConfig:
        """Settings from ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS) plus options."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BusConfigError(f"MQTT url {url!r}: {exc}") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise BusConfigError(f"MQTT url {url!r}: expected mqtt://host:port or mqtts://host:port")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise BusConfigError(f"MQTT url {url!r}: no path or query allowed (set the topic prefix instead)")
        tls = parts.scheme == "mqtts" or bool(options.pop("tls", False))
        values: dict[str, Any] = {"host": parts.hostname, "port": port or (8883 if tls else 1883), "tls": tls}
        if parts.username is not None:
            values["username"] = unquote(parts.username)
        if parts.password is not None:
            values["password"] = unquote(parts.password)
        values.update({k: v for k, v in options.items() if v is not None})
        try:
            return cls(**values)
        except TypeError as exc:
            raise BusConfigError(f"MQTT settings: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Any) -> BusConfig | None:
        """From ``exchange_sim.config.MqttSettings`` (url, topic_prefix, username, password, tls, ...)."""
        url = getattr(settings, "url", None)
        if not url:
            return None
        names = {f.name for f in dataclasses.fields(cls)} - {"host", "port"}
        options = {name: getattr(settings, name) for name in names if getattr(settings, name, None) is not None}
        if getattr(settings, "tls", False) is False:
            options.pop("tls", None)
        return cls.from_url(url, **options)

    @property
    def url(self) -> str:
        """The broker address for messages (never the password)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.tls_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise BusConfigError(f"MQTT TLS CA file {self.tls_ca_file!r}: {exc}") from None
        if self.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
