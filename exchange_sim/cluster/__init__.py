"""Cluster mode: account shards and stateless gateways on a NATS JetStream cluster.

``exchange-sim run`` stays one process with SQLite; this package is ``exchange-sim cluster ...``
(README, "Cluster mode"). Modules:

- ``layout``: names of streams, subjects and buckets; the id ranges and the placement rule;
- ``placement``: the ``exsim-accounts`` KV bucket, account -> shard (what routing reads);
- ``connect``: connecting, declaring streams/buckets (retried while JetStream elects leaders);
- ``codec``: inputs, events and replies on the wire (the core's canonical JSON);
- ``ingest``: market events into the venue's stream, de-duplicated by message id;
- ``replica``: one shard's core rebuilt from its snapshot and input stream, then followed;
- ``shard``: a shard member: standby, and with the lease the sequencer writing the input stream;
- ``reads``: a shard member's read side (``exsim.read.<shard>``); ``account_state``: what it
  answers about an account; ``history``: the history read model on the shard, loaded per request
  on the gateway; ``user_frames``: user-data frames built on the shard;
- ``gateway``: ``ClusterNode``, the API's node seam on NATS, and ``ShardedExchange`` (queries);
  ``market_view``: a gateway's market data (an account-less core on the market stream);
  ``listen_keys``: listenKeys shared by every gateway;
- ``processes`` (what each process runs), ``natsd`` (local nats-server cluster), ``local``
  (everything as local processes), ``cli`` (the typer sub-app).
"""
