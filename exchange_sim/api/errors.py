"""The API layer's errors: one root, each carrying the venue's code, message and HTTP status.

Binance USDⓈ-M answers a refused request with ``{"code": -2019, "msg": "Margin is insufficient."}``
and an HTTP status (400 for nearly everything, 401 for a refused API key, 429 for rate limits,
404 for an unknown path). ccxt turns the code into its exception class, so the codes here are
the venue's own (developers.binance.com "Error Codes" for USDⓈ-M futures).
"""

from __future__ import annotations

from aiohttp import web


class ApiError(Exception):
    """Root of the API layer's errors: a venue error answer (code, msg, HTTP status)."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status)


# ----------------------------------------------------------------------------- venue codes

UNKNOWN = -1000
INTERNAL = -1001
TOO_MANY_REQUESTS = -1003
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
TOO_MANY_PARAMETERS = -1101
MANDATORY_PARAM = -1102
UNKNOWN_PARAM = -1103
UNREAD_PARAMETERS = -1104
PARAM_NOT_REQUIRED = -1106
BAD_PRECISION = -1111
INVALID_TIF = -1115
INVALID_ORDER_TYPE = -1116
INVALID_SIDE = -1117
INVALID_SYMBOL = -1121
INVALID_INTERVAL = -1127
OPTIONAL_PARAMS_BAD_COMBO = -1128
INVALID_LISTEN_KEY = -1125
INVALID_PARAMETER = -1130
INVALID_RECV_WINDOW = -1131
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FMT = -2014
REJECTED_MBX_KEY = -2015
QTY_LESS_THAN_ZERO = -4003
PRICE_LESS_THAN_ZERO = -4001
PRICE_NOT_BY_TICK = -4014
QTY_NOT_BY_STEP = -4023
INVALID_LEVERAGE = -4028
INVALID_MARGIN_TYPE = -4044
INVALID_POSITION_SIDE = -4061
INVALID_AMOUNT = -4055
PATH_INVALID = -5000


def unknown_error() -> ApiError:
    return ApiError(UNKNOWN, "An unknown error occured while processing the request.", 500)


def mandatory(name: str) -> ApiError:
    return ApiError(MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def invalid_param(name: str) -> ApiError:
    return ApiError(INVALID_PARAMETER, f"Data sent for parameter '{name}' is not valid.")


def invalid_symbol() -> ApiError:
    return ApiError(INVALID_SYMBOL, "Invalid symbol.")


def bad_api_key() -> ApiError:
    return ApiError(REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action.", 401)


def bad_signature() -> ApiError:
    return ApiError(INVALID_SIGNATURE, "Signature for this request is not valid.")


def too_many_requests(limit: int, interval: str) -> ApiError:
    return ApiError(TOO_MANY_REQUESTS,
                    f"Too many requests; current limit is {limit} requests per {interval}. "
                    "Please use the websocket for live updates to avoid polling the API.", 429)


def no_such_order() -> ApiError:
    return ApiError(NO_SUCH_ORDER, "Order does not exist.")


def unknown_order() -> ApiError:
    return ApiError(CANCEL_REJECTED, "Unknown order sent.")


def path_invalid(method: str, path: str) -> ApiError:
    return ApiError(PATH_INVALID, f"Path {path}, Method {method} is invalid", 404)


# HTTP status the venue uses for a code the core returns (everything else is 400)
_STATUS = {REJECTED_MBX_KEY: 401, BAD_API_KEY_FMT: 401, TOO_MANY_REQUESTS: 429}


def from_rejection(code: int, msg: str) -> ApiError:
    """The API error for a core ``CommandRejected(code, msg)``."""
    return ApiError(code, msg, _STATUS.get(code, 400))
