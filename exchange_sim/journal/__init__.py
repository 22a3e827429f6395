"""The session record: input journal, snapshots, event log and crash recovery (SQLite, WAL).

``Journal`` stores; ``recover`` rebuilds the exchange after a crash; ``replay_session`` and
``compare_session`` re-run a recorded session. ``JournalError`` is the one error root.
"""

from .errors import JournalCorruptError, JournalError, JournalWriteError
from .recovery import ReplayReport, compare_session, rebuild, recover, replay_session
from .store import Journal, JournalConfig, JournalStats

__all__ = [
    "Journal",
    "JournalConfig",
    "JournalCorruptError",
    "JournalError",
    "JournalStats",
    "JournalWriteError",
    "ReplayReport",
    "rebuild",
    "compare_session",
    "recover",
    "replay_session",
]
