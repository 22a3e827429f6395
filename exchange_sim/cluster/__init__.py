"""Cluster mode: account shards and stateless gateways on a NATS JetStream cluster.

``exchange-sim run`` stays one process with SQLite; this package is ``exchange-sim cluster ...``.
Pieces: ``layout`` (names, the account -> shard rule), ``ingest`` (market events into the
venue's stream), ``replica`` (a shard's core fed from its input stream), ``shard`` (standby and
sequencing leader), ``gateway`` (the API's node seam on NATS), ``natsd`` (a local nats-server
cluster), ``local`` (everything as processes on one machine), ``cli``.
"""
