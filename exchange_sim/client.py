"""A small synchronous client of a running simulator: its admin API and its signed Binance API.

    client = SimClient("http://127.0.0.1:8765", admin_token)
    alice = client.create_account("alice", "1000")          # Credentials(account, api_key, api_secret)
    client.signed(alice, "POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 20})
    client.market([{"type": "mark", "symbol": "BTCUSDT", "price": "60000"}])

The one place the venue's request signature is written (``signature``: HMAC-SHA256 of the query
string, hex), shared by the CLI (``exchange-sim accounts ...``), the live lessons and the tests.
Every failure is a ``SimApiError`` whose message says what was refused and why, in one line.
Standard library HTTP only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class SimApiError(Exception):
    """The simulator refused a request or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Credentials:
    account: int
    api_key: str
    api_secret: str


def signature(secret: str, payload: str) -> str:
    """The venue's request signature: hex HMAC-SHA256 of ``payload`` (query string + body) with the secret."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_query(secret: str, params: dict[str, Any], *, timestamp: int | None = None,
                 recv_window: int | None = 10_000) -> str:
    """``params`` + timestamp (+ recvWindow) url-encoded, with ``&signature=...`` appended."""
    query = dict(params, timestamp=int(time.time() * 1000) if timestamp is None else timestamp)
    if recv_window is not None:
        query["recvWindow"] = recv_window
    text = urllib.parse.urlencode(query)
    return f"{text}&signature={signature(secret, text)}"


class SimClient:
    """The admin contract (``/sim/v1``) and venue-signed requests against one simulator."""

    def __init__(self, base_url: str, admin_token: str | None = None, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.admin_token = admin_token
        self.timeout = timeout

    # ------------------------------------------------------------------ transport

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        """One HTTP request; JSON in and out; any failure is a one-line ``SimApiError``."""
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                text = res.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            code = None
            try:
                parsed = json.loads(detail)
                detail = parsed.get("msg") or parsed.get("error") or detail
                code = parsed.get("code")
                if code is not None:
                    detail = f"{code} {detail}"
            except (ValueError, AttributeError):
                pass
            raise SimApiError(f"{method} {path.partition('?')[0]}: HTTP {exc.code}: {detail}",
                              exc.code, code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SimApiError(f"cannot reach the simulator at {self.base_url} ({reason}); "
                              "is `exchange-sim run` running?") from None
        return json.loads(text) if text else None

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        if not self.admin_token:
            raise SimApiError("an admin token is needed: pass --admin-token or set EXSIM_ADMIN_TOKEN "
                              "(the server prints its token at start)")
        return self.request(method, path, body, {"Authorization": f"Bearer {self.admin_token}"})

    def signed(self, creds: Credentials, method: str, path: str, params: dict[str, Any]) -> Any:
        """A venue-signed request with ``creds`` (parameters in the query string)."""
        return self.request(method, f"{path}?{signed_query(creds.api_secret, params)}", None,
                            {"X-MBX-APIKEY": creds.api_key})

    def public(self, path: str, params: dict[str, Any] | None = None) -> Any:
        query = urllib.parse.urlencode(params or {})
        return self.request("GET", path + (f"?{query}" if query else ""))

    # ------------------------------------------------------------------ admin contract

    def create_account(self, name: str, deposit: str = "0", parent: int | None = None) -> Credentials:
        body: dict[str, Any] = {"name": name, "deposit": deposit}
        if parent is not None:
            body["parent"] = parent
        out = self.admin("POST", "/sim/v1/accounts", body)
        return Credentials(int(out["accountId"]), str(out["apiKey"]), str(out["apiSecret"]))

    def accounts(self) -> Any:
        return self.admin("GET", "/sim/v1/accounts")

    def account(self, account: int) -> Any:
        return self.admin("GET", f"/sim/v1/accounts/{account}")

    def deposit(self, account: int, amount: str) -> Any:
        return self.admin("POST", f"/sim/v1/accounts/{account}/deposit", {"amount": amount})

    def withdraw(self, account: int, amount: str) -> Any:
        return self.admin("POST", f"/sim/v1/accounts/{account}/withdraw", {"amount": amount})

    def transfer(self, source: int, target: int, amount: str) -> Any:
        return self.admin("POST", "/sim/v1/transfers", {"from": source, "to": target, "amount": amount})

    def reset(self, account: int, deposit: str | None = None) -> Any:
        return self.admin("POST", f"/sim/v1/accounts/{account}/reset", {} if deposit is None else {"deposit": deposit})

    def market(self, events: list[dict[str, Any]], *, force: bool = False) -> Any:
        """Inject market events; ``force`` moves the market past the bad-tick band on purpose."""
        body: dict[str, Any] = {"events": events, "force": True} if force else {"events": events}
        return self.admin("POST", "/sim/v1/market", body)

    def events(self, **params: Any) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self.admin("GET", "/sim/v1/events" + (f"?{query}" if query else ""))

    def dashboard_state(self) -> Any:
        return self.request("GET", "/dashboard/state")
