"""The architecture holds: a pure core, dependencies pointing inward layer by layer, no import
circle inside the core, and one writer of money.

Layers (README "Architecture"; every import of ``exchange_sim.*`` or ``feeds`` is checked,
including imports inside functions and under ``TYPE_CHECKING``):

    core  <-  profiles, journal, feeds  <-  config  <-  runtime  <-  api, bus, lessons  <-  dashboard  <-  serve  <-  cli
    (cluster mode: runtime, api  <-  cluster  <-  cli)

``profiles`` is the venue data the core is built from, ``config`` validates settings (it knows
the feed specs), the dashboard plays lessons on the node and answers in the API's errors,
``serve`` wires everything (the composition root the cli and the tests call), and ``client``, a
standard-library HTTP client of a running simulator, depends on nothing of ours.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE = ROOT / "exchange_sim" / "core"
FORBIDDEN = {"asyncio", "socket", "time", "os", "random", "aiohttp", "websockets", "aiomqtt", "sqlite3",
             "threading", "datetime", "subprocess", "ccxt", "select", "signal"}

_FOUNDATION = {"core", "profiles", "journal", "feeds", "config"}
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "profiles": {"core"},
    "journal": {"core"},
    "feeds": {"core", "profiles"},
    "config": {"core", "profiles", "feeds"},
    "runtime": _FOUNDATION,
    "api": _FOUNDATION | {"runtime"},
    "bus": _FOUNDATION | {"runtime"},
    "client": set(),
    "lessons": _FOUNDATION | {"runtime", "client"},
    "dashboard": _FOUNDATION | {"runtime", "api", "lessons"},
    "serve": _FOUNDATION | {"runtime", "api", "bus", "lessons", "dashboard"},
    "cluster": _FOUNDATION | {"runtime", "api"},  # cluster mode: the API's node seam on NATS
    "cli": _FOUNDATION | {"runtime", "api", "bus", "lessons", "dashboard", "serve", "client", "cluster"},
    "__init__": set(),
}


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1])
                if node.module:
                    names.add(f"{base}.{node.module}")
                else:
                    names.update(f"{base}.{alias.name}" for alias in node.names)
            elif node.module:
                names.add(node.module)
    return names


def _layer_of_file(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).parts
    if parts[0] == "feeds":
        return "feeds"
    return parts[1][:-3] if len(parts) == 2 else parts[1]


def _layer_of_module(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] == "feeds":
        return "feeds"
    if parts[0] != "exchange_sim":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _sources() -> list[pathlib.Path]:
    return sorted((ROOT / "exchange_sim").rglob("*.py")) + sorted((ROOT / "feeds").rglob("*.py"))


def test_core_imports_no_io_clock_or_random():
    files = sorted(CORE.glob("*.py"))
    assert files
    for path in files:
        bad = {n for n in _imports(path) if n.split(".")[0] in FORBIDDEN}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_every_layer_imports_only_the_layers_inside_it():
    seen = set()
    for path in _sources():
        layer = _layer_of_file(path)
        assert layer in ALLOWED, f"{path.relative_to(ROOT)}: package {layer!r} has no place in the layering"
        seen.add(layer)
        for name in _imports(path):
            target = _layer_of_module(name)
            if target is None or target == layer:
                continue
            assert target in ALLOWED[layer], \
                f"{path.relative_to(ROOT)} ({layer}) imports {name} ({target}): dependencies point inward"
    assert {"core", "journal", "feeds", "runtime", "api", "bus", "dashboard", "lessons", "cli"} <= seen


def test_the_layering_itself_has_no_cycle():
    order: list[str] = []
    for _ in ALLOWED:
        for layer, deps in ALLOWED.items():
            if layer not in order and deps <= set(order):
                order.append(layer)
    assert set(order) == set(ALLOWED)


def test_the_core_has_no_import_circle():
    graph = {}
    for path in sorted(CORE.glob("*.py")):
        mods = {n.rsplit(".", 1)[-1] for n in _imports(path) if n.startswith("exchange_sim.core.")}
        graph[path.stem] = mods & {p.stem for p in CORE.glob("*.py")}
    state: dict[str, int] = {}

    def visit(mod: str, trail: list[str]) -> None:
        if state.get(mod) == 2:
            return
        assert state.get(mod) != 1, "import circle in exchange_sim/core: " + " -> ".join(trail + [mod])
        state[mod] = 1
        for dep in sorted(graph[mod]):
            visit(dep, trail + [mod])
        state[mod] = 2

    for mod in sorted(graph):
        visit(mod, [])


def test_core_modules_stay_small():
    for path in sorted(CORE.glob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines < 400, f"{path.name} has {lines} lines (split it by concept)"


MONEY_ATTRIBUTES = {"cross_wallet", "isolated_wallet", "spot_wallet", "qty", "cost"}


def _money_writes(path: pathlib.Path) -> list[str]:
    """``x.cross_wallet = / += ...``, ``x.ledger[...] += ...`` and the like outside an ``__init__``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef) or func.name == "__init__":
            continue
        for node in ast.walk(func):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in MONEY_ATTRIBUTES:
                    owner = ast.unparse(target.value)
                    if owner in ("pos", "position", "acct", "src", "dst") or owner.endswith(("pos", "acct")):
                        found.append(f"{path.name}:{node.lineno} {ast.unparse(target)}")
                if isinstance(target, ast.Subscript) and ast.unparse(target.value).endswith(".ledger"):
                    found.append(f"{path.name}:{node.lineno} {ast.unparse(target)}")
    return found


def test_only_the_ledger_writes_wallets_ledger_totals_and_positions():
    writes = [w for path in sorted(CORE.glob("*.py")) if path.name != "ledger.py" for w in _money_writes(path)]
    assert not writes, "money written outside ledger.py: " + ", ".join(writes)
    assert _money_writes(CORE / "ledger.py")  # the check does see the ledger's own writes
