"""Rewrite the expected event logs of the golden sessions: ``python -m tests.golden.regen [NAME ...]``.

Only after a reviewed change of behaviour: the diff of ``tests/golden/sessions/*/events.jsonl``
is the change, and it goes into the commit for review. Without names, every session.
"""

from __future__ import annotations

import sys

from tests.golden.replay import SESSIONS, run, session_names


def main(names: list[str]) -> None:
    for name in names or session_names():
        session = SESSIONS / name
        lines = [line.text for line in run(session)]
        (session / "events.jsonl").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
        print(f"{name}: {len(lines)} events")


if __name__ == "__main__":
    main(sys.argv[1:])
