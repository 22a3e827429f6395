"""Who is calling: API-key lookup, HMAC-SHA256 request signatures, recvWindow, rate limits, admin token.

Binance signs ``totalParams`` = raw query string + raw body, with ``signature`` (hex HMAC-SHA256
of the rest, keyed with the account's secret) as the last parameter, and the key in the
``X-MBX-APIKEY`` header. Refusals use the venue's codes: no/ill-formed key −2014, unknown key
−2015 (HTTP 401), bad signature −1022, stale or future timestamp −1021, recvWindow over 60 s
−1131. Secrets are compared in constant time and never logged.
"""

from __future__ import annotations

import collections
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from . import errors
from .errors import ApiError
from .params import Params, parse_pairs

API_KEY_RE = re.compile(r"[A-Za-z0-9_.\-]{1,128}")  # venue keys are 64 alnum; scripted ones vary
SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{64}")  # both matched with fullmatch
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000
FUTURE_TOLERANCE_MS = 1000


class KeyStore(Protocol):
    def account_by_api_key(self, key: str) -> int | None: ...

    def api_secret(self, account: int) -> str: ...


def split_signature(raw: str) -> tuple[str, str | None]:
    """(``raw`` without its trailing ``signature=...``, the signature) — signature must be last."""
    if raw.startswith("signature="):
        rest, sig = "", raw[len("signature="):]
    else:
        head, sep, sig = raw.rpartition("&signature=")
        if not sep:
            return raw, None
        rest = head
    if "&" in sig:  # something after the signature: not the venue's shape
        return raw, None
    return rest, sig


def sign(secret: str, payload: str) -> str:
    """hex HMAC-SHA256 of ``payload`` keyed with ``secret`` (what a client computes)."""
    return hmac.digest(secret.encode(), payload.encode(), "sha256").hex()  # one-shot: no HMAC object


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: the account, its key and the parsed parameters."""

    account: int
    api_key: str
    params: Params


def api_key_of(headers: Mapping[str, str], keys: KeyStore) -> tuple[int, str]:
    """The account owning the request's ``X-MBX-APIKEY`` header (−2014 / −2015)."""
    key = headers.get("X-MBX-APIKEY")
    if not key or not API_KEY_RE.fullmatch(key):
        raise ApiError(errors.BAD_API_KEY_FMT, "API-key format invalid.", 401)
    account = keys.account_by_api_key(key)
    if account is None:
        raise errors.bad_api_key()
    return account, key


def verify_signed(raw_query: str, raw_body: str, headers: Mapping[str, str], keys: KeyStore,
                  now_ms: int) -> Caller:
    """Authenticate a signed (USER_DATA / TRADE) request or raise the venue's error."""
    account, key = api_key_of(headers, keys)
    query_rest, query_sig = split_signature(raw_query)
    body_rest, body_sig = split_signature(raw_body)
    if body_sig is not None and query_sig is not None:
        raise errors.bad_signature()
    signature: str | None
    if body_sig is not None:
        signature, query_part, body_part = body_sig, raw_query, body_rest
    else:
        signature, query_part, body_part = query_sig, query_rest, raw_body
    payload = query_part + body_part
    params = Params(parse_pairs(query_part, body_part))
    if signature is None:
        raise errors.mandatory("signature")
    if not SIGNATURE_RE.fullmatch(signature):
        raise errors.bad_signature()
    expected = sign(keys.api_secret(account), payload)
    if not hmac.compare_digest(expected, signature.lower()):
        raise errors.bad_signature()
    timestamp = params.integer("timestamp", required=True)
    recv_window = params.integer("recvWindow", default=DEFAULT_RECV_WINDOW)
    assert timestamp is not None and recv_window is not None
    if recv_window <= 0 or recv_window > MAX_RECV_WINDOW:
        raise ApiError(errors.INVALID_RECV_WINDOW, "recvWindow must be less than 60000")
    if timestamp > now_ms + FUTURE_TOLERANCE_MS:
        raise ApiError(errors.INVALID_TIMESTAMP,
                       "Timestamp for this request was 1000ms ahead of the server's time.")
    if now_ms - timestamp > recv_window:
        raise ApiError(errors.INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow.")
    return Caller(account, key, params)


def check_admin_token(authorization: str | None, token: str) -> None:
    """Refuse an admin request without ``Authorization: Bearer <token>`` (HTTP 401, −2015)."""
    expected = f"Bearer {token}"
    if not authorization or not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise ApiError(errors.REJECTED_MBX_KEY, "Missing or invalid admin token.", 401)


class SlidingWindow:
    """At most ``limit`` units of weight per ``window_ms`` for each key (venue 429 −1003 when over)."""

    def __init__(self, limit: int, window_ms: int) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self._hits: dict[str, collections.deque[tuple[int, int]]] = {}
        self._used: dict[str, int] = {}
        self._calls = 0

    def used(self, key: str, now_ms: int) -> int:
        hits = self._hits.get(key)
        if not hits:
            return 0
        used = self._used[key]
        while hits and hits[0][0] <= now_ms - self.window_ms:
            used -= hits.popleft()[1]
        self._used[key] = used
        if not hits:
            del self._hits[key]
            del self._used[key]
        return used

    def take(self, key: str, now_ms: int, weight: int = 1) -> bool:
        """Count ``weight`` for ``key`` if it fits; False (nothing counted) when over the limit."""
        self._calls += 1
        if self._calls % 1024 == 0:  # forget keys that went quiet, so random keys cannot pile up
            for stale in [k for k, hits in self._hits.items() if hits[-1][0] <= now_ms - self.window_ms]:
                del self._hits[stale]
                del self._used[stale]
        if self.used(key, now_ms) + weight > self.limit:
            return False
        self._hits.setdefault(key, collections.deque()).append((now_ms, weight))
        self._used[key] = self._used.get(key, 0) + weight
        return True


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-key limits (Binance USDⓈ-M defaults: 2400 weight/min, 300 orders/10 s, 1200 orders/min)."""

    request_weight_per_minute: int = 2400
    orders_per_10s: int = 300
    orders_per_minute: int = 1200


class RateLimiter:
    """Request-weight and order-count limits per API key (or per client address when unsigned)."""

    def __init__(self, limits: RateLimits, clock: Callable[[], int]) -> None:
        self.limits = limits
        self.clock = clock
        self._weight = SlidingWindow(limits.request_weight_per_minute, 60_000)
        self._orders_10s = SlidingWindow(limits.orders_per_10s, 10_000)
        self._orders_min = SlidingWindow(limits.orders_per_minute, 60_000)

    def request(self, key: str, weight: int = 1) -> None:
        if not self._weight.take(key, self.clock(), weight):
            raise errors.too_many_requests(self.limits.request_weight_per_minute, "minute")

    def order(self, key: str) -> None:
        now = self.clock()
        if self._orders_10s.used(key, now) + 1 > self.limits.orders_per_10s:
            raise ApiError(-1015, f"Too many new orders; current limit is {self.limits.orders_per_10s} "
                           "orders per TEN_SECONDS.", 429)
        if self._orders_min.used(key, now) + 1 > self.limits.orders_per_minute:
            raise ApiError(-1015, f"Too many new orders; current limit is {self.limits.orders_per_minute} "
                           "orders per MINUTE.", 429)
        self._orders_10s.take(key, now)
        self._orders_min.take(key, now)

    def used_weight(self, key: str) -> int:
        return self._weight.used(key, self.clock())
