"""The gateway's sharded view answers every query the Binance-compatible API asks of the core.

The API reads the core through ``ctx.ex``; in cluster mode that is ``ShardedExchange``, which
forwards each query to the right shard's replica by hand. A query added to the core and used by
the API but not forwarded here fails only at run time (a -1000 in a cluster), so this reads the
API's own source for every ``ctx.ex.<name>`` it uses and checks the view has it.
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
