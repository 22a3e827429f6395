"""The cluster layer's errors: one root; NATS errors are translated at the boundary."""


class ClusterError(Exception):
    """Root of the cluster mode's errors."""


class NotLeader(ClusterError):
    """This shard process does not (or no longer) hold its shard's lease."""


class WriterRefused(NotLeader):
    """The input stream refused an append (expected-last-sequence mismatch): another writer won."""


class ShardUnavailable(ClusterError):
    """No shard leader answered in time: nothing was acknowledged."""
