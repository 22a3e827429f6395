"""The gateway's sharded view answers every query the Binance-compatible API asks of the core.

The API reads the core through ``ctx.ex``; in cluster mode that is ``ShardedExchange``, which
answers each query by hand from the account's state its shard sent (or the gateway's market
view). A query added to the core and used by the API but not answered here fails only at run
time (a -1000 in a cluster), so this reads the API's own source for every ``ctx.ex.<name>`` it
uses and checks the view has it; likewise for the handler names the gateway fetches by.
"""

import re
from pathlib import Path

from exchange_sim.cluster.gateway import ShardedExchange
from exchange_sim.core.exchange import Exchange

API = Path(__file__).resolve().parents[2] / "exchange_sim" / "api"


def test_the_sharded_view_offers_every_core_query_the_api_uses():
    used = set()
    for path in API.glob("*.py"):
        used |= set(re.findall(r"\bctx\.ex\.([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    assert used, "found no ctx.ex.<name> in exchange_sim/api: the pattern is out of date"
    core_queries = {name for name in used if hasattr(Exchange, name) or name in ("accounts", "markets", "instruments")}
    missing = sorted(name for name in core_queries if not hasattr(ShardedExchange, name))
    assert not missing, f"ShardedExchange does not forward {missing}, which exchange_sim/api reads from ctx.ex"


def _api_handlers() -> dict:
    import inspect

    from exchange_sim.api import account, orders, public, sapi

    return {name: fn for module in (orders, account, sapi, public)
            for name, fn in vars(module).items() if inspect.iscoroutinefunction(fn)}


def test_the_gateways_reader_names_are_api_handlers_and_write_only_ones_read_nothing_first():
    """The gateway decides what to fetch before a handler by the handler's name: every name it
    knows must be a handler, and a handler it fetches nothing for must read no account state
    before its command (afterwards only the command's answer, which carries the account's state)."""
    import inspect

    from exchange_sim.api import admin
    from exchange_sim.cluster.gateway import HISTORY_READERS, ORDER_LIST_READERS, VENUE_READERS, WRITE_ONLY_READERS

    handlers = _api_handlers()
    handlers.update({f"admin:{name}": fn for name, fn in vars(admin).items() if inspect.iscoroutinefunction(fn)})
    unknown = sorted((HISTORY_READERS | VENUE_READERS | WRITE_ONLY_READERS | ORDER_LIST_READERS) - set(handlers))
    assert not unknown, f"no API handler is called {unknown}"
    for name in sorted(WRITE_ONLY_READERS):
        source = inspect.getsource(handlers[name])
        first = min((i for i in (source.find("ctx.submit("), source.find("await new_order(")) if i >= 0))
        before = source[:first]
        for read in ("ctx.ex.", "ctx.history.", "_find(", "_order_named(", "_find_algo("):
            assert read not in before, f"{name} reads {read} before its command"
    # an order named by id or client id the shard looks up itself (core, then history); lists need the rows
    history_readers = {name for name, fn in handlers.items() if not name.startswith("_") and (
        "ctx.history." in inspect.getsource(fn) or "_history_orders(" in inspect.getsource(fn))}
    missing = sorted(history_readers - HISTORY_READERS)
    assert not missing, f"{missing} read the history but the gateway does not fetch it for them"
    list_readers = {name for name, fn in handlers.items() if not name.startswith("_") and any(
        read in inspect.getsource(fn) for read in ("ctx.ex.open_orders(", "_history_orders(", "await cancel_order("))}
    missing = sorted(list_readers - ORDER_LIST_READERS)
    assert not missing, f"{missing} read the open orders but the gateway does not fetch them for them"
