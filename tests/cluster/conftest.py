"""Fixtures of the cluster tests: a real 3-node nats-server cluster, three shards (leader +
standby each) and two gateways, all as processes on 127.0.0.1 (exchange_sim/cluster/local.py).

The tests skip, saying why, only when Debian's ``nats-server`` is not installed (``.ci/run``
installs it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from exchange_sim.cluster.local import LocalCluster
from exchange_sim.cluster.natsd import nats_server_binary

SYMBOLS = ["BTCUSDT", "ETHUSDT"]

needs_nats = pytest.mark.skipif(nats_server_binary() is None,
                                reason="nats-server is not installed (apt-get install nats-server; .ci/run does)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running local cluster for the module; its logs are printed if the module fails to start it."""
    if nats_server_binary() is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server; .ci/run does)")
    os.environ.setdefault("PYTHONPATH", os.getcwd())
    keep = os.environ.get("EXSIM_CLUSTER_LOGS")  # a directory to keep the processes' logs in (debugging)
    where = Path(tempfile.mkdtemp(prefix="cluster-", dir=keep)) if keep else tmp_path_factory.mktemp("cluster")
    # untrimmed input streams: the fault tests replay each whole journal into a fresh core to find
    # duplicates (trimming is tested in test_shard_journal.py)
    with LocalCluster(where, gateways=2, shards=3, standbys=1, symbols=SYMBOLS,
                      lease_ttl=1.5, snapshot_every=50, trim=False) as c:
        yield c
