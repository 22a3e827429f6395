"""The core stays pure: no I/O, clocks or global randomness; dependencies point inward."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE = ROOT / "exchange_sim" / "core"
FORBIDDEN = {"asyncio", "socket", "time", "os", "random", "aiohttp", "websockets", "aiomqtt", "sqlite3",
             "threading", "datetime", "subprocess", "ccxt", "select", "signal"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_io_clock_or_random():
    files = sorted(CORE.glob("*.py"))
    assert files
    for path in files:
        bad = {n for n in _imports(path) if n.split(".")[0] in FORBIDDEN}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_core_depends_on_nothing_outside_itself():
    for path in sorted(CORE.glob("*.py")):
        outward = {n for n in _imports(path) if n.startswith("exchange_sim") or n.startswith("feeds")}
        assert not outward, f"{path.name} imports {sorted(outward)} (the core must not depend outward)"


def test_feeds_import_only_core_types_from_exchange_sim():
    for path in sorted((ROOT / "feeds").rglob("*.py")):
        for name in _imports(path):
            if name.startswith("exchange_sim"):
                assert name.startswith("exchange_sim.core") or name.startswith("exchange_sim.profiles"), \
                    f"{path.relative_to(ROOT)} imports {name}"
