"""Binance USDⓈ-M compatible REST + websocket API, user-data streams and the admin (instructor) API.

An unmodified ccxt ``binanceusdm`` (sync, async, pro) trades against it with only a config dict
(docs/binance-api.md). Modules, one concept each:

- ``app``: the aiohttp application, error middleware, ``ApiServer`` / ``serve``;
- ``context``: ``ApiConfig``, the shared ``ApiContext``, handler wrappers (public / signed / keyed);
- ``auth``: API keys, HMAC signatures, recvWindow, rate limits, the admin token;
- ``errors``: ``ApiError`` (the one root) and the venue's codes; ``params``: parameter parsing;
- ``wire``: core views and events in Binance's JSON shapes;
- ``public``, ``orders``, ``account``: the REST endpoints; ``admin``: ``/sim/v1``;
- ``streams``: websocket connections and SUBSCRIBE; ``market_publisher``: market frames;
  ``user_stream``: listenKey and user-data frames; ``depth``: diff numbering shared with REST;
  ``market_stats``: trades, candles and funding history seen by the simulator.
"""

from .app import ApiServer, make_app, serve
from .auth import RateLimits
from .context import CTX, ApiConfig, ApiContext
from .errors import ApiError

__all__ = ["CTX", "ApiConfig", "ApiContext", "ApiError", "ApiServer", "RateLimits", "make_app", "serve"]
