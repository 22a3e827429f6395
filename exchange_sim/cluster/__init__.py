"""Cluster mode: account shards and stateless gateways on a NATS JetStream cluster.

``exchange-sim run`` stays one process with SQLite; this package is ``exchange-sim cluster ...``
(README, "Cluster mode"). Modules:

- ``layout``: names of streams, subjects and buckets; the account -> shard rule;
- ``connect``: connecting, declaring streams/buckets (retried while JetStream elects leaders);
- ``codec``: inputs, events and replies on the wire (the core's canonical JSON);
- ``ingest``: market events into the venue's stream, de-duplicated by message id;
- ``replica``: one shard's core rebuilt from its snapshot and input stream, then followed;
- ``shard``: a shard member: standby, and with the lease the sequencer writing the input stream;
- ``gateway``: ``ClusterNode``, the API's node seam on NATS, and ``ShardedExchange`` (queries);
- ``merge``: the gateway's outputs in the single node's order; ``history``: per-shard history
  read models; ``listen_keys``: listenKeys shared by every gateway;
- ``processes`` (what each process runs), ``natsd`` (local nats-server cluster), ``local``
  (everything as local processes), ``cli`` (the typer sub-app).
"""
