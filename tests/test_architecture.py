"""The code's structure, checked: no import cycles (counting every import: lazy ones inside
functions and type-only ones under ``TYPE_CHECKING`` too), routers that are HTTP only, and one
declared record per background task."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import iap
from iap.queue import TaskQueue
from iap.tasks import TASKS
from tests.conftest import settings_for

PACKAGE = Path(iap.__file__).parent


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports_of(name: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = [
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    inside = {
        id(node)
        for fn in functions
        for node in ast.walk(fn)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from iap.x import y`` imports the module iap.x.y when there is one.
            targets = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        for target in targets:
            if target in MODULES and target != name:
                yield Import(name, target, node.lineno, id(node) in inside)


IMPORTS = [found for name, path in MODULES.items() for found in _imports_of(name, path)]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_scan_sees_lazy_and_type_only_imports() -> None:
    cli = {i.target: i for i in IMPORTS if i.importer == "iap.cli.main"}
    assert cli["iap.app"].in_function  # the one lazy import, for start-up time
    assert not cli["iap.services"].in_function
    metrics = {i.target for i in IMPORTS if i.importer == "iap.observability.metrics"}
    assert "iap.analysis.pipeline" in metrics  # under TYPE_CHECKING


def test_no_import_cycle_at_all() -> None:
    edges: dict[str, set[str]] = {}
    for found in IMPORTS:
        edges.setdefault(found.importer, set()).add(found.target)
    assert _cycles(edges) == []


# Lazy imports of the project's own modules, each with its reason; a new one must say why here.
LAZY_IMPORTS_ALLOWED = {
    # The routers and page templates load only in processes that serve HTTP.
    ("iap.cli.main", "iap.app"),
    # The entry point catches a Ctrl-C pressed while the commands load.
    ("iap.cli", "iap.cli.main"),
    # Every domain's tables, for Alembic's metadata (called from the migrations' env.py).
    ("iap.models", "iap.analysis.models"),
    ("iap.models", "iap.auth.models"),
    ("iap.models", "iap.events.models"),
    ("iap.models", "iap.finding.models"),
    ("iap.models", "iap.images.models"),
    ("iap.models", "iap.people.models"),
    # boto3 (about 24 MB per process) loads only where storage is S3.
    ("iap.storage", "iap.storage.s3"),
}


def test_no_lazy_imports_but_the_explained_ones() -> None:
    lazy = {(i.importer, i.target) for i in IMPORTS if i.in_function}
    assert lazy - LAZY_IMPORTS_ALLOWED == set()


def test_the_composition_root_is_imported_at_module_level_by_app_worker_and_cli() -> None:
    for importer in ("iap.app", "iap.worker", "iap.cli.main"):
        assert Import(importer, "iap.services", _line_of(importer), False) in IMPORTS, importer


def _line_of(importer: str) -> int:
    (line,) = {i.line for i in IMPORTS if i.importer == importer and i.target == "iap.services"}
    return line


ROUTERS = sorted(name for name in MODULES if name.endswith(".router"))
# The web UI's page families: routers too, composed by iap.web.router.
PAGES = sorted(
    name
    for name in MODULES
    if name.startswith("iap.web.")
    and name not in ROUTERS
    and name not in {"iap.web.templating", "iap.web.placeholders"}
)


def _third_party_imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    return {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }


@pytest.mark.parametrize("router", ROUTERS)
def test_routers_import_no_other_domains_router(router: str) -> None:
    others = {i.target for i in IMPORTS if i.importer == router and i.target in ROUTERS}
    assert others == set()


@pytest.mark.parametrize("router", ROUTERS + PAGES)
def test_routers_do_no_database_work_themselves(router: str) -> None:
    assert not {m for m in _third_party_imports(router) if m.split(".")[0] == "sqlalchemy"}
    source = MODULES[router].read_text()
    for call in ("session.get(", "session.execute(", "session.scalar", "session.add("):
        assert call not in source, f"{router} calls {call}: that belongs in a service"


def test_the_web_ui_is_split_by_page_family() -> None:
    assert PAGES == [
        "iap.web.account",
        "iap.web.admin",
        "iap.web.duplicates",
        "iap.web.gallery",
        "iap.web.pages",
        "iap.web.people",
        "iap.web.sessions",
    ]


def test_every_task_is_declared_once_with_a_queue_of_its_choosing(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    names = [task.name for task in TASKS]
    assert len(set(names)) == len(names)
    settings = settings_for("embedded", request, tmp_path)
    queue = TaskQueue(settings, TASKS)
    try:
        declared = {actor: queue.broker.get_actor(actor).queue_name for actor in names}
    finally:
        queue.close()
    assert declared == {task.name: task.queue_name(settings) for task in TASKS}
    assert declared["analyse_image"] == settings.queue_name
    assert declared["deliver_webhook"] == f"{settings.queue_name}-webhooks"


def test_a_worker_on_local_disk_loads_no_web_framework_boto3_or_scipy(tmp_path: Path) -> None:
    # Each costs every process that imports it MBs (FastAPI ~11, boto3 ~24, SciPy ~28): a
    # worker that stores on disk, and its passes, need none of them.
    import subprocess
    import sys

    script = (
        "import io, sys\n"
        "from PIL import Image\n"
        "import iap.worker, iap.analysis.tasks\n"
        "from iap.config import Settings\n"
        "from iap.storage import create_storage\n"
        "from iap.analysis.analysers import ANALYSERS\n"
        "from iap.analysis.pipeline import run_pass\n"
        f"create_storage(Settings(_env_file=None, data_dir={str(tmp_path)!r}))\n"
        "out = io.BytesIO(); Image.new('RGB', (64, 48), 'teal').save(out, 'JPEG')\n"
        "run_pass(io.BytesIO(out.getvalue()), [a for a in ANALYSERS if a.name != 'text'])\n"
        "unwanted = ('boto3', 'botocore', 'scipy', 'fastapi', 'starlette')\n"
        "print(sorted(m for m in unwanted if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
