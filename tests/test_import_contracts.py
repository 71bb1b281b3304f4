"""Import contracts: the layering docs/architecture.md describes, checked on the source's AST.

Every `import` in `beststag_cli` is read (at module level, inside functions, and under
`if TYPE_CHECKING:`), nothing is executed. The contracts:

1. The core (everything but `cli/`, `server/` and `__main__`) never imports the CLI, the server,
   typer/click, rich, or fastapi/starlette/uvicorn, not even lazily inside a function.
2. The sandbox imports nothing of the product: only `beststag_cli.sandbox.*`, the standard
   library and third-party packages.
3. No import cycles: none among module-level imports (parent packages included, as Python runs
   them), and none through function-level imports beyond the ones listed with a reason.
4. Components (cache, query, backup, metrics, ops) meet only through the gateway (its change sink
   included), the journal and the shared utilities; each component → other-component import that
   exists is listed with its reason, and the meeting points import no component.

Each exemption table below is exact: a new import fails the test until it is added with a
reason, and an entry that no longer matches anything fails it too, so the tables stay true.
Each failure names the import and its file:line.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import beststag_cli

PACKAGE = "beststag_cli"
SRC = Path(beststag_cli.__file__).resolve().parent
REPO = SRC.parent

# ---------------------------------------------------------------------------------------------
# the layers: every top-level module or package of beststag_cli is named here (a new one fails
# test_every_module_has_a_layer until it is placed)

CLI = "cli"  # the Typer CLI and `python -m beststag_cli`
SERVER = "server"  # the FastAPI webhook server
SANDBOX = "sandbox"  # the Airtable emulator
COMPONENT = "component"
MEETING = "meeting point"  # the gateway, the journal and the shared utilities: what components may share
ORCHESTRATOR = "orchestrator"  # core code above the components (reads them all), run by the CLI only

LAYERS = {
    "cli": CLI,
    "__main__": CLI,
    "server": SERVER,
    "sandbox": SANDBOX,
    "cache": COMPONENT,
    "query": COMPONENT,
    "backup": COMPONENT,
    "metrics": COMPONENT,
    "ops": COMPONENT,
    "feed": COMPONENT,  # the change feed (issue 19): Airtable's webhook payloads into the change sink
    # the gateway includes its change sink, gateway/changes.py (issue 17): any component may import it
    "gateway": MEETING,
    "journal": MEETING,
    "__init__": MEETING,
    "config": MEETING,
    "fastconfig": MEETING,
    "settings_sources": MEETING,
    "errors": MEETING,
    "fsutil": MEETING,
    "clock": MEETING,
    "logs": MEETING,
    "paths": MEETING,
    "names": MEETING,
    "inputs": MEETING,
    "interrupts": MEETING,
    "diskspace": MEETING,
    "lockholder": MEETING,
    "progress": MEETING,
    "doctor": ORCHESTRATOR,
    "sandbox_load": ORCHESTRATOR,  # sandbox load --from-backup reads backups into the sandbox (issue 18)
}

#: what the core must never import (the CLI's and the server's own libraries included)
FORBIDDEN_IN_CORE = (
    "beststag_cli.cli",
    "beststag_cli.server",
    "typer",
    "click",
    "rich",
    "fastapi",
    "starlette",
    "uvicorn",
)

#: core module → forbidden prefix it may import, and why
CORE_EXEMPTIONS = {
    (
        "beststag_cli.ops.simulate",
        "beststag_cli.cli",
    ): "the simulated cron week is a testing aid above the CLI: it runs `beststag ARGS` in-process through "
    "cli.main.run and the fast path, as cron would (scripts/simulate-week); no core module imports it "
    "(test_nothing_in_the_core_imports_the_simulation)",
}

#: product module the sandbox may import, and why (each must itself import nothing of the product)
SANDBOX_EXEMPTIONS = {
    "beststag_cli.clock": "the emulator keeps the product's pinned time (Airtable's Date header, createdTime and "
    "last-modified times, attachment URL expiry follow clock.now(), which tests and the simulated week "
    "pin); clock is stdlib-only. Dropping it means a time source passed to every Sandbox/SandboxStore",
}

#: (component, module of another component) → why the component imports it directly
COMPONENT_EDGES = {
    ("backup", "beststag_cli.feed.since"): "an incremental asks the change feed's record log what changed since "
    "its parent, instead of listing every record id",
    ("feed", "beststag_cli.query.schema"): "payloads name fields by id: the schema gives names and types",
    ("cache", "beststag_cli.query.spec"): "cached answers are keyed by and evaluated for a QuerySpec",
    ("cache", "beststag_cli.query.schema"): "write application works on the table's TableInfo",
    ("cache", "beststag_cli.query.schema_cache"): "the manager binds specs through query's schema cache",
    (
        "cache",
        "beststag_cli.query.evaluate",
    ): "answers from a mirror and answers patched by a write are evaluated with query's own semantics",
    ("cache", "beststag_cli.query.validate"): "write application binds a cached spec to the schema (bind)",
    ("cache", "beststag_cli.query.normalize"): "cache keys are the query's canonical form (cache_key)",
    ("cache", "beststag_cli.query.filters"): "write application walks a cached query's filter",
    ("cache", "beststag_cli.query.formula"): "selective caching scores the compiled formula (compile_bound)",
    (
        "cache",
        "beststag_cli.query.explain",
    ): "selective caching scores a query's complexity; a miss fetches with its request options",
    ("cache", "beststag_cli.query.service"): "a miss is fetched through query's service (the gateway behind it)",
    (
        "backup",
        "beststag_cli.sandbox",
    ): "a restore drill (backup/drill.py) restores into a scratch sandbox base of its own, never Airtable",
    (
        "backup",
        "beststag_cli.sandbox.load",
    ): "a restore drill builds its scratch base from the backup's schema.json with the sandbox's loader",
    ("metrics", "beststag_cli.ops.jobs"): "jobstate takes the finished JobRun (a type only) to record its gauges",
    ("ops", "beststag_cli.metrics.jobstate"): "a finished job records its gauges for the textfile (after_job)",
    (
        "ops",
        "beststag_cli.backup.runner",
    ): "the simulated week holds the backup lock (base_lock) to reproduce cron's collisions",
    (
        "backup",
        "beststag_cli.query.schema_cache",
    ): "a restore that recreated tables or fields drops the target's saved schema copy (schema_path)",
}

#: (meeting-point module, component module) → why a shared module reaches into a component
MEETING_EDGES = {
    ("beststag_cli.config", "beststag_cli.cache.policy"): "settings validate cache TTLs against the policy's maximum",
}

#: cycles through function-level imports (lazy factories), as their module sets, and why
KNOWN_RUNTIME_CYCLES = {
    frozenset(
        {"beststag_cli.cache.backend", "beststag_cli.cache.store", "beststag_cli.cache.redis_store"}
    ): "make_store in cache/backend.py imports the store it picks, and store.repair calls make_store back "
    "(redis_store shares store's LRU and codec)",
    frozenset(
        {"beststag_cli.metrics.export", "beststag_cli.metrics.jobstate"}
    ): "jobstate writes the textfile through export, which reads jobstate's figures",
}


# ---------------------------------------------------------------------------------------------
# the scanner


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # the module imported (`from a import b`: a.b when that is a module, else a)
    file: Path
    line: int
    where: str  # "module", "function" or "type-checking"

    def __str__(self) -> str:
        return f"{self.file.relative_to(REPO)}:{self.line}: {self.importer} imports {self.target} ({self.where})"


@functools.cache
def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name → (file, is a package) for every module of the package."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _targets(module: str, is_pkg: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        here = module.split(".") if is_pkg else module.split(".")[:-1]
        here = here[: len(here) - (node.level - 1)]
        prefix = ".".join(here + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    known = modules()
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, path: Path, is_pkg: bool) -> None:
        self.module, self.path, self.is_pkg = module, path, is_pkg
        self.functions = 0
        self.type_checking = 0
        self.found: list[Import] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions += 1
        self.generic_visit(node)
        self.functions -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.type_checking += 1
        for child in node.body:
            self.visit(child)
        self.type_checking -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        where = "function" if self.functions else "type-checking" if self.type_checking else "module"
        for target in _targets(self.module, self.is_pkg, node):
            self.found.append(Import(self.module, target, self.path, node.lineno, where))

    visit_ImportFrom = visit_Import


@functools.cache
def imports() -> tuple[Import, ...]:
    out: list[Import] = []
    for name, (path, is_pkg) in modules().items():
        c = _Collector(name, path, is_pkg)
        c.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        out += c.found
    return tuple(out)


def top(module: str) -> str:
    """The top-level module or package of a beststag_cli module (`__init__` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> str:
    return LAYERS[top(module)]


def is_product(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def in_core(module: str) -> bool:
    return layer(module) not in (CLI, SERVER)


def fail_with(what: str, problems: Iterable[object], how: str) -> None:
    lines = sorted({str(p) for p in problems})
    assert not lines, f"{what}:\n  " + "\n  ".join(lines) + f"\n{how}"


# ---------------------------------------------------------------------------------------------
# the contracts


def test_every_module_has_a_layer() -> None:
    fail_with(
        "modules in no layer",
        {top(m) for m in modules() if top(m) not in LAYERS},
        "place each in LAYERS (tests/test_import_contracts.py)",
    )


def test_the_core_imports_no_cli_server_or_console_library() -> None:
    used: set[tuple[str, str]] = set()
    bad = []
    for imp in imports():
        if not in_core(imp.importer):
            continue
        for prefix in FORBIDDEN_IN_CORE:
            if under(imp.target, prefix):
                if (imp.importer, prefix) in CORE_EXEMPTIONS:
                    used.add((imp.importer, prefix))
                else:
                    bad.append(imp)
    fail_with(
        "the core imports the CLI, the server or their libraries",
        bad,
        "move the code to cli/ (or server/), or hand the core what it needs (a callable, a Protocol)",
    )
    fail_with("CORE_EXEMPTIONS entries nothing needs any more", set(CORE_EXEMPTIONS) - used, "remove them")


def test_nothing_in_the_core_imports_the_simulation() -> None:
    exempt = {m for m, _ in CORE_EXEMPTIONS}
    fail_with(
        "core modules import a module exempted from the core contract",
        [i for i in imports() if i.target in exempt and in_core(i.importer) and i.importer not in exempt],
        "an exempted module must stay a leaf: only the CLI, scripts and tests may import it",
    )


def test_the_sandbox_imports_nothing_of_the_product() -> None:
    used = set()
    bad = []
    for imp in imports():
        if layer(imp.importer) != SANDBOX or not is_product(imp.target) or layer(imp.target) == SANDBOX:
            continue
        if imp.target in SANDBOX_EXEMPTIONS:
            used.add(imp.target)
        else:
            bad.append(imp)
    fail_with(
        "the sandbox imports the product",
        bad,
        "the sandbox stays self-contained: define what it needs in beststag_cli/sandbox/ "
        "(a Protocol is matched structurally) or let the product pass it in",
    )
    fail_with("SANDBOX_EXEMPTIONS entries nothing needs any more", set(SANDBOX_EXEMPTIONS) - used, "remove them")
    fail_with(
        "modules the sandbox may import pull in more of the product",
        [i for i in imports() if i.importer in SANDBOX_EXEMPTIONS and is_product(i.target)],
        "an exempted module must import nothing of the product",
    )


def _graph(kinds: set[str], parents: bool) -> dict[str, dict[str, Import]]:
    """importer → imported product module → the first such import (for its file:line)."""
    known = modules()
    g: dict[str, dict[str, Import]] = defaultdict(dict)
    for imp in imports():
        if imp.where not in kinds or not is_product(imp.target) or imp.target == imp.importer:
            continue
        targets = [imp.target]
        if parents:  # `import a.b.c` runs a/__init__ and a/b/__init__ first
            parts = imp.target.split(".")
            targets += [".".join(parts[:i]) for i in range(1, len(parts))]
        for t in targets:
            if t in known and t != imp.importer and not imp.importer.startswith(t + "."):
                g[imp.importer].setdefault(t, imp)
    return g


def _cycles(g: dict[str, dict[str, Import]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g.get(w, {})))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(frozenset(comp))
    return out


def _cycle_path(g: dict[str, dict[str, Import]], comp: frozenset[str]) -> str:
    """One cycle inside ``comp``, each step with the import that makes it."""
    start = min(comp)
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w, imp in sorted(g.get(v, {}).items()):
                if w == start:
                    steps = [*paths[v], imp]
                    return " -> ".join([start, *(s.target for s in steps)]) + "\n    " + "\n    ".join(map(str, steps))
                if w in comp and w not in paths:
                    paths[w] = [*paths[v], imp]
                    nxt.append(w)
        frontier = nxt
    return ", ".join(sorted(comp))  # pragma: no cover - a component always holds a cycle


def test_no_import_cycle_at_module_level() -> None:
    g = _graph({"module"}, parents=True)
    fail_with(
        "import cycles among module-level imports",
        [_cycle_path(g, c) for c in _cycles(g)],
        "break each: move what both need into a small module both import",
    )


def test_no_new_import_cycle_through_lazy_imports() -> None:
    g = _graph({"module", "function"}, parents=False)
    found = _cycles(g)
    fail_with(
        "import cycles through function-level imports",
        [_cycle_path(g, c) for c in found if c not in KNOWN_RUNTIME_CYCLES],
        "break each (the shared parts in a module both import, as gateway/limits.py does for the "
        "limiters), or list it in KNOWN_RUNTIME_CYCLES with a reason",
    )
    fail_with(
        "KNOWN_RUNTIME_CYCLES entries that are no cycle (any more)",
        [", ".join(sorted(c)) for c in set(KNOWN_RUNTIME_CYCLES) - set(found)],
        "remove them",
    )


def test_components_meet_only_through_the_gateway_the_journal_and_shared_utilities() -> None:
    used: set[tuple[str, str]] = set()
    bad = []
    for imp in imports():
        if not is_product(imp.target) or imp.target == PACKAGE:
            continue
        src, dst = layer(imp.importer), layer(imp.target)
        if src == COMPONENT and dst in (COMPONENT, SANDBOX, ORCHESTRATOR) and top(imp.importer) != top(imp.target):
            key = (top(imp.importer), imp.target)
            table = COMPONENT_EDGES
        elif src == MEETING and dst in (COMPONENT, ORCHESTRATOR):
            key, table = (imp.importer, imp.target), MEETING_EDGES
        else:
            continue
        if key in table:
            used.add(key)
        else:
            bad.append(imp)
    fail_with(
        "imports between components outside the gateway, the change sink, the journal and the shared utilities",
        bad,
        "go through the gateway (writes reach the cache through its change sink), the journal or a "
        "shared utility; if the edge is right, add it to COMPONENT_EDGES / MEETING_EDGES with a reason",
    )
    stale = (set(COMPONENT_EDGES) | set(MEETING_EDGES)) - used
    fail_with("COMPONENT_EDGES / MEETING_EDGES entries no import uses any more", stale, "remove them")
