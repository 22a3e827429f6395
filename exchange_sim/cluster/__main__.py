"""``python -m exchange_sim.cluster ...`` = ``exchange-sim cluster ...`` (how LocalCluster starts its children)."""

from .cli import app

app(prog_name="exchange-sim cluster")
