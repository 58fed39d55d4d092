"""The ``iap`` command: run the service, manage the database and users, upload images, and
find them (search, look-alikes, duplicates, people)."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy.exc import DBAPIError

from iap import migrations
from iap.auth.models import Role
from iap.auth.schemas import SignupIn
from iap.auth.service import create_user as create
from iap.client import IapClient, IapError
from iap.config import ConfigError, Settings, load_settings
from iap.db import create_engine
from iap.errors import AppError
from iap.images.service import Swept, sweep_storage
from iap.observability.logs import configure_logging
from iap.observability.metrics import serve_worker_metrics, shared_metrics_dir
from iap.services import Services, build_services, close_services
from iap.transfer import RichProgress, TransferError, export_install, import_install, open_archive
from iap.worker import run_worker

if TYPE_CHECKING:
    from fastapi import FastAPI

T = TypeVar("T")

app = typer.Typer(
    help="iap — Image Analysis Platform.", no_args_is_help=True, pretty_exceptions_enable=False
)
console = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long

IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".webp",
    ".gif",
    ".tif",
    ".tiff",
    ".bmp",
    ".heic",
    ".heif",
    ".avif",
}


# Progress bars go to stderr when it is a terminal; IAP_PROGRESS=1 shows them anyway (logs, CI).
PROGRESS_VARIABLE = "IAP_PROGRESS"


def _show_progress() -> bool:
    return console.is_terminal or os.environ.get(PROGRESS_VARIABLE) == "1"


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    # Escaped: a message quotes names, paths and server sentences, which may hold "[...]".
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def _with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Connect everything, run ``work``, disconnect. A misconfiguration (bad setting,
    unreachable database or store, schema behind) exits 2 with its one line."""

    async def run() -> T:
        services = await build_services(settings)
        try:
            return await work(services)
        finally:
            await close_services(services)

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None


async def _nothing(services: Services) -> None:
    """For a pre-flight check: connecting is the whole test."""


def served_app() -> FastAPI:
    """The app as ``iap serve`` runs it in each server process: logging is set up first, for
    the processes of ``--workers N`` are fresh interpreters that inherit none."""
    # Imported here: the routers and page templates load only in processes that serve HTTP,
    # not in every `iap` command.
    from iap.app import create_app

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address [default: IAP_HOST or 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: IAP_PORT or 8000].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Run the API (and, on embedded defaults, everything else) in this process. On SIGTERM
    it stops accepting connections, lets requests in flight finish (at most
    IAP_SHUTDOWN_TIMEOUT_SECONDS), then lets the analysis threads finish their jobs."""
    settings = _settings()
    with _ctrl_c_stops():
        _with_services(settings, _nothing)  # misconfiguration stops here with one line
        configure_logging(settings.log_level, settings.log_format)
        if settings.log_format == "console":  # in JSON, every line of output must be a record
            console.print(
                f"iap on http://{host or settings.host}:{port or settings.port}  "
                f"(docs: /docs, data: {settings.resolved_database_url.split('://')[0]}, "
                f"storage: {settings.resolved_storage_url.split('://')[0]})"
            )
        # Several server processes share one metrics directory: whichever answers /metrics
        # speaks for all of them.
        with shared_metrics_dir() if workers > 1 else nullcontext():
            _run_uvicorn(settings, host or settings.host, port or settings.port, workers)


@contextmanager
def _ctrl_c_stops() -> Iterator[None]:
    """Ctrl-C while a server or worker starts is a stop like the one it handles once running
    (after which it exits 0): quiet, not a traceback or click's "Aborted!"."""
    try:
        yield
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _run_uvicorn(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "iap.cli.main:served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        log_config=None,  # served_app sets logging up, in every server process
        access_log=False,  # the app logs each request itself, with its request id
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        # Behind nginx the socket's peer is the proxy: believe its X-Forwarded-For/-Proto (the
        # client's address for rate limits, https for Secure cookies), but only from the
        # proxies named in IAP_FORWARDED_ALLOW_IPS, so a client cannot claim another address.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


@app.command()
def worker(
    processes: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    threads: Annotated[
        int | None, typer.Option(min=1, max=64, help="Threads per process [IAP_WORKER_THREADS].")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Serve Prometheus metrics here [IAP_WORKER_METRICS_PORT]."
        ),
    ] = None,
) -> None:
    """Consume analysis jobs from the broker (IAP_BROKER_URL) until SIGTERM/SIGINT. On SIGTERM
    each process finishes the jobs in hand and gives back those it fetched but had not
    started. With a metrics port, one endpoint answers for all the processes."""
    settings = _settings()
    if settings.broker_url is None:
        raise _fail(
            "IAP_BROKER_URL is not set: without a broker, analysis runs inside `iap serve`", 2
        )
    with _ctrl_c_stops():
        _with_services(settings, _nothing)  # misconfiguration stops here with one line
        configure_logging(settings.log_level, settings.log_format)
        count = threads or settings.worker_threads
        port = metrics_port or settings.worker_metrics_port
        if processes == 1:
            _serve_worker_metrics(settings.worker_metrics_host, port)
            run_worker(settings, count)
            return
        # The processes write their samples to a shared directory; this one serves their sum.
        with shared_metrics_dir():
            _serve_worker_metrics(settings.worker_metrics_host, port)
            _supervise_workers(settings, count, processes)


def _serve_worker_metrics(host: str, port: int | None) -> None:
    if port is None:
        return
    try:
        serve_worker_metrics(host, port)
    except OSError as exc:
        raise _fail(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}", 2) from None


def _supervise_workers(settings: Settings, count: int, processes: int) -> None:
    """Run ``processes`` worker processes; hand them this process's SIGTERM/SIGINT."""
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=run_worker, args=(settings, count), name=f"iap-worker-{i}")
        for i in range(processes)
    ]
    for child in children:
        child.start()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (a release step on PostgreSQL; automatic on SQLite)."""
    settings = _settings()

    async def run() -> tuple[str | None, str | None]:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.resolved_database_url)
        try:
            before = await migrations.current_revision(engine)
            await migrations.upgrade(engine, revision)
            return before, await migrations.current_revision(engine)
        finally:
            await engine.dispose()

    try:
        before, after = asyncio.run(run())
    except (OSError, DBAPIError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise _fail(f"the database cannot be used: {reason}") from None
    console.print(f"database schema: {before or 'empty'} -> {after}")


def _ask(what: str, instead: str, *, hide_input: bool = False) -> str:
    """Prompt for a value; with nothing to read it from (no terminal, no input), say what to
    pass instead rather than click's bare "Aborted!"."""
    try:
        answer: str = typer.prompt(what, hide_input=hide_input, confirmation_prompt=hide_input)
    except typer.Abort:
        raise _fail(
            f"{what.lower()} not given and nothing to ask it on: pass {instead}", 2
        ) from None
    return answer


@app.command("create-user")
def create_user(
    username: str,
    email: Annotated[str | None, typer.Option(help="Asked for when not given.")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="IAP_NEW_USER_PASSWORD",
            help="Asked for (twice, hidden) when not given; in a script, set the variable.",
        ),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Give the user the admin role.")] = False,
) -> None:
    """Create an account directly in the database (the way to make the first admin)."""
    email = email or _ask("Email", "--email EMAIL")
    password = password or _ask("Password", "--password or IAP_NEW_USER_PASSWORD", hide_input=True)
    settings = _settings()
    try:
        SignupIn(username=username, email=email, password=password)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"{first['loc'][-1]}: {first['msg']}", 2) from None

    async def run(services: Services) -> str:
        async with services.sessions() as session:
            user = await create(
                session,
                username=username,
                email=email,
                password=password,
                role=Role.ADMIN if admin else Role.USER,
            )
            return str(user.id)

    try:
        user_id = _with_services(settings, run)
    except AppError as exc:
        raise _fail(exc.detail) from None
    console.print(f"created {'admin' if admin else 'user'} {username} ({user_id})")


@app.command()
def gc(
    grace_minutes: Annotated[int, typer.Option(min=0, help="Keep blobs younger than this.")] = 60,
) -> None:
    """Delete what the store holds that nothing needs: originals and derivative folders no image
    references (left by interrupted uploads, deletes during an analysis), and the partial
    files and abandoned uploads of interrupted writes."""

    async def run(services: Services) -> Swept:
        async with services.sessions() as session:
            return await sweep_storage(
                session, services.storage, older_than=timedelta(minutes=grace_minutes)
            )

    swept = _with_services(_settings(), run)
    console.print(
        f"removed {swept.orphans} orphan blob(s) and "
        f"{swept.leftovers} leftover(s) of interrupted writes"
    )


def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(
                    p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            raise _fail(f"{path}: no such file or folder", 2)
    return files


@app.command()
def upload(
    paths: Annotated[
        list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")
    ],
    server: Annotated[
        str, typer.Option(envvar="IAP_SERVER", help="Base URL of the iap API.")
    ] = "http://127.0.0.1:8000",
    token: Annotated[str | None, typer.Option(envvar="IAP_TOKEN", help="Access token.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="IAP_API_KEY", help="API key.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Tag every image (repeatable).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Description for every image.")] = None,
    parallel: Annotated[int, typer.Option(min=1, max=16, help="Uploads at once.")] = 4,
) -> None:
    """Upload images to a running iap server, with a progress bar. Exits 1 if any file failed."""
    if not token and not api_key:
        raise _fail("give --token or --api-key (or set IAP_TOKEN / IAP_API_KEY)", 2)
    files = _collect(paths)
    if not files:
        raise _fail("no image files found", 2)
    failures: list[tuple[Path, str]] = []
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        # Image ids go to stdout for scripts (`iap upload dir > ids.txt`), never into the bar.
        redirect_stdout=False,
        redirect_stderr=False,
        disable=not _show_progress(),
    )
    with IapClient(server, token=token, api_key=api_key) as client:
        _check_access(client, server)
        _upload_all(client, files, progress, failures, tag or [], description, parallel)
    done = len(files) - len(failures)
    summary = f"uploaded {done} of {len(files)} file(s)"
    console.print(summary + (f", {len(failures)} failed" if failures else ""))
    if failures:
        raise typer.Exit(1)


def _check_access(client: IapClient, server: str) -> None:
    """One clear line for a wrong URL or bad credentials, instead of one failure per file."""
    try:
        client.me()
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the iap server at {server}: {exc}") from None
    except IapError as exc:
        raise _fail(f"the server refused the credentials: {exc.detail} ({exc.code})") from None


def _upload_all(
    client: IapClient,
    files: list[Path],
    progress: Progress,
    failures: list[tuple[Path, str]],
    tags: list[str],
    description: str | None,
    parallel: int,
) -> None:

    total_bytes = sum(f.stat().st_size for f in files)
    with progress:
        task = progress.add_task(f"0/{len(files)} files", total=total_bytes)

        def send(path: Path) -> dict[str, object]:
            return client.upload(
                path,
                tags=tags,
                description=description,
                on_progress=lambda n: progress.advance(task, n),
            )

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = {pool.submit(send, f): f for f in files}
            for finished, future in enumerate(as_completed(futures), start=1):
                path = futures[future]
                progress.update(task, description=f"{finished}/{len(files)} files")
                try:
                    image = future.result()
                    print(f"{image['id']}  {path}")
                except IapError as exc:
                    failures.append((path, f"{exc.code}: {exc.detail}"))
                    progress.console.print(f"[red]failed[/red] {path}: {exc.detail} ({exc.code})")
                except (OSError, httpx.HTTPError) as exc:
                    failures.append((path, str(exc)))
                    progress.console.print(f"[red]failed[/red] {path}: {exc}")


Server = Annotated[str, typer.Option(envvar="IAP_SERVER", help="Base URL of the iap API.")]
Token = Annotated[str | None, typer.Option(envvar="IAP_TOKEN", help="Access token.")]
ApiKey = Annotated[str | None, typer.Option(envvar="IAP_API_KEY", help="API key.")]


def _client(server: str, token: str | None, api_key: str | None) -> IapClient:
    if not token and not api_key:
        raise _fail("give --token or --api-key (or set IAP_TOKEN / IAP_API_KEY)", 2)
    client = IapClient(server, token=token, api_key=api_key)
    try:
        _check_access(client, server)
    except typer.Exit:
        client.close()
        raise
    return client


def _refusal(exc: IapError) -> str:
    """The server's sentence and code; for a request it could not validate (a malformed id,
    a name too long), the first field and what is wrong with it instead of the whole list."""
    detail = exc.detail
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        field = first.get("loc", ["?"])[-1]
        detail = f"{field}: {first.get('msg', 'not valid')}"
    return f"{detail} ({exc.code})"


def _answer_or_fail(call: Callable[[], T]) -> T:
    try:
        return call()
    except IapError as exc:
        raise _fail(_refusal(exc)) from None
    except httpx.HTTPError as exc:
        raise _fail(f"the server stopped answering: {exc}") from None


@app.command()
def search(
    query: Annotated[
        str, typer.Argument(help='Words to find; bake* for a prefix, "in quotes" for a phrase.')
    ],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many hits.")] = 20,
    tag: Annotated[list[str] | None, typer.Option(help="Only images with this tag.")] = None,
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """Your images whose filename, tags, description, text in the image or camera match the
    words, best first: id, filename, where it matched first and a snippet of it (tab separated
    on stdout, for scripts)."""
    with _client(server, token, api_key) as client:
        hits = _answer_or_fail(
            lambda: list(
                itertools.islice(client.iter_search(query, min(limit, 100), tag=tag), limit)
            )
        )
    for hit in hits:
        first = hit["matches"][0] if hit["matches"] else None
        where = first["field"] if first else ""
        snippet = " ".join(first["snippet"].split()) if first else ""
        print(f"{hit['image']['id']}\t{hit['image']['original_filename']}\t{where}\t{snippet}")
    console.print(f"{len(hits)} hit(s) for {query!r}")


@app.command()
def similar(
    image_id: Annotated[str, typer.Argument(help="The image to find look-alikes of.")],
    limit: Annotated[int, typer.Option(min=1, max=100, help="At most this many.")] = 20,
    max_distance: Annotated[
        int | None, typer.Option(min=0, max=16, help="Farthest pHash distance [server: 10].")
    ] = None,
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """Your images that look like one image, nearest first: distance, id, filename (tab
    separated on stdout, for scripts)."""
    with _client(server, token, api_key) as client:
        page = _answer_or_fail(lambda: client.similar(image_id, limit, max_distance))
    for hit in page["data"]:
        print(f"{hit['distance']}\t{hit['image']['id']}\t{hit['image']['original_filename']}")
    console.print(f"{len(page['data'])} look-alike(s) within {page['max_distance']} bits")


def _delete(client: IapClient, image_id: str) -> None:
    _answer_or_fail(lambda: client.delete_image(image_id))


@app.command()
def duplicates(
    kind: Annotated[
        str, typer.Option(help="exact: the same bytes; near: resized, recompressed copies.")
    ] = "exact",
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete every image but the one to keep.")
    ] = False,
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """Your duplicate groups: each image on a line (group number, keep/copy, distance, id,
    filename; tab separated on stdout). With --delete, every copy is deleted and the one to
    keep stays."""
    if kind not in ("exact", "near"):
        raise _fail(f"--kind is exact or near, not {kind!r}", 2)
    with _client(server, token, api_key) as client:
        groups = _answer_or_fail(lambda: list(client.iter_duplicates(kind)))
        copies = 0
        for number, group in enumerate(groups, start=1):
            for member in group["images"]:
                image = member["image"]
                role = "keep" if image["id"] == group["keep"] else "copy"
                distance = "" if member["distance"] is None else member["distance"]
                print(f"{number}\t{role}\t{distance}\t{image['id']}\t{image['original_filename']}")
                if role == "copy":
                    copies += 1
                    if delete:
                        _delete(client, str(image["id"]))
    done = f", {copies} deleted" if delete else ""
    console.print(f"{len(groups)} group(s) of {kind} duplicates, {copies} copies{done}")


# people ----------------------------------------------------------------------------------------

people_app = typer.Typer(
    help="Your people: the faces in your images, grouped by who they are (after each analysis).",
    no_args_is_help=True,
)
app.add_typer(people_app, name="people")

PersonId = Annotated[str, typer.Argument(help="The person's id (see `iap people list`).")]


def _person_line(person: dict[str, Any]) -> str:
    """A person on stdout: id, images, faces, shown or hidden, name (tab separated)."""
    state = "hidden" if person["hidden"] else "shown"
    counts = f"{person['image_count']}\t{person['face_count']}"
    return f"{person['id']}\t{counts}\t{state}\t{person['name'] or ''}"


def _people(count: int) -> str:
    return f"{count} person" if count == 1 else f"{count} people"


def _call_server(
    server: str, token: str | None, api_key: str | None, call: Callable[[IapClient], T]
) -> T:
    """Connect, make the call, disconnect; a refusal exits 1 with the server's one line."""
    with _client(server, token, api_key) as client:
        return _answer_or_fail(lambda: call(client))


@people_app.command("list")
def people_list(
    hidden: Annotated[bool, typer.Option("--hidden", help="List hidden people too.")] = False,
    name: Annotated[
        str | None,
        typer.Option(help="Only people whose name holds these words (ada* for a prefix)."),
    ] = None,
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """Your people, those in the most images first: id, images, faces, shown or hidden, name
    (tab separated on stdout, for scripts)."""
    found = _call_server(
        server,
        token,
        api_key,
        lambda client: list(client.iter_people(include_hidden=hidden, name=name)),
    )
    for person in found:
        print(_person_line(person))
    named = f" named {escape(repr(name))}" if name is not None else ""
    console.print(_people(len(found)) + named + (", hidden ones included" if hidden else ""))


@people_app.command("show")
def people_show(
    person_id: PersonId,
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """One person: each field and its value on a line of stdout (tab separated)."""
    person = _call_server(server, token, api_key, lambda client: client.get_person(person_id))
    for field, value in person.items():
        shown = "" if value is None else str(value).lower() if isinstance(value, bool) else value
        print(f"{field}\t{shown}")


@people_app.command("name")
def people_name(
    person_id: PersonId,
    name: Annotated[str | None, typer.Argument(help="The name (quoted if it has spaces).")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Forget the person's name.")] = False,
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """Name a person (`iap search NAME` then finds their images), or forget the name with
    --clear. Prints the person's line."""
    if clear == (name is not None):
        raise _fail("give a name, or --clear to forget the one the person has", 2)
    person = _call_server(
        server, token, api_key, lambda client: client.name_person(person_id, name)
    )
    print(_person_line(person))
    console.print(
        f"named {person_id} {escape(repr(name))}" if name else f"forgot the name of {person_id}"
    )


def _set_hidden(
    person_id: str, hidden: bool, server: str, token: str | None, key: str | None
) -> None:
    def change(client: IapClient) -> dict[str, Any]:
        return client.hide_person(person_id) if hidden else client.unhide_person(person_id)

    print(_person_line(_call_server(server, token, key, change)))
    console.print(
        f"hid {person_id} (`iap people list --hidden` lists them)"
        if hidden
        else f"{person_id} is listed again"
    )


@people_app.command("hide")
def people_hide(
    person_id: PersonId,
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """Leave a person out of `iap people list` (strangers in the background, say). Prints the
    person's line."""
    _set_hidden(person_id, True, server, token, api_key)


@people_app.command("unhide")
def people_unhide(
    person_id: PersonId,
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """List a hidden person again. Prints the person's line."""
    _set_hidden(person_id, False, server, token, api_key)


@people_app.command("merge")
def people_merge(
    person_id: Annotated[str, typer.Argument(help="The person to merge; gone afterwards.")],
    into: Annotated[str, typer.Option(help="The person who stays; PERSON_ID's faces join them.")],
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """Two people who are one: the first one's faces join the person --into, who keeps their
    name (or takes the first one's if they have none). Prints the line of the person who
    stays."""
    person = _call_server(
        server, token, api_key, lambda client: client.merge_person(person_id, into)
    )
    print(_person_line(person))
    console.print(
        f"merged {person_id} into {into}: {person['face_count']} face(s) in "
        f"{person['image_count']} image(s)"
    )


@people_app.command("images")
def people_images(
    person_id: PersonId,
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """The images a person is in, newest upload first: image id, the person's faces in it
    (comma-separated ids, for `iap people remove-face`), filename (tab separated on stdout)."""
    found = _call_server(
        server, token, api_key, lambda client: list(client.iter_person_images(person_id))
    )
    for item in found:
        image, faces = item["image"], ",".join(face["id"] for face in item["faces"])
        print(f"{image['id']}\t{faces}\t{image['original_filename']}")
    console.print(f"{len(found)} image(s) of {person_id}")


@people_app.command("remove-face")
def people_remove_face(
    person_id: PersonId,
    face_id: Annotated[
        str, typer.Argument(help="The face to take out (see `iap people images` or `iap faces`).")
    ],
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """Take a wrongly grouped face out of a person. The face then belongs to nobody, and
    stays so; a person left without faces is gone."""
    _call_server(server, token, api_key, lambda client: client.remove_face(person_id, face_id))
    console.print(f"took face {face_id} out of {person_id}")


@people_app.command("thumbnail")
def people_thumbnail(
    person_id: PersonId,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="The file to write, or a folder to write PERSON_ID.webp in.",
        ),
    ] = ".",
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """Save a person's face: their cover face's thumbnail (WebP, 160 px square). Prints where
    it went."""

    def save(client: IapClient) -> Path:
        try:
            return client.person_thumbnail(person_id, output)
        except OSError as exc:
            raise _fail(f"cannot write {output}: {exc.strerror or exc}") from None

    saved = _call_server(server, token, api_key, save)
    print(saved)
    console.print(f"saved the face of {person_id} ({saved.stat().st_size} bytes)")


@app.command()
def faces(
    image_id: Annotated[str, typer.Argument(help="The image whose faces to list.")],
    server: Server = "http://127.0.0.1:8000",
    token: Token = None,
    api_key: ApiKey = None,
) -> None:
    """Who is in an image: each face's id, its person's id, its box (x,y,width,height in
    pixels of the upright image) and the person's name (tab separated on stdout). A face not
    grouped yet, or taken out of its person, has no person."""
    with _client(server, token, api_key) as client:
        found = _answer_or_fail(lambda: client.image_faces(image_id))
        status = "succeeded"
        if not found:  # none, or none yet: say which
            status = _answer_or_fail(lambda: client.get_image(image_id))["analysis"]["status"]
    for face in found:
        person, box = face["person"] or {}, face["box"]
        where = f"{box['x']},{box['y']},{box['width']},{box['height']}"
        print(f"{face['id']}\t{person.get('id', '')}\t{where}\t{person.get('name') or ''}")
    console.print(f"{len(found)} face(s) in {image_id}{_not_done(status)}")


def _not_done(status: str) -> str:
    """Why an image may have faces it does not show yet."""
    if status == "failed":
        return ": its analysis failed"
    return "" if status == "succeeded" else f" yet: its analysis is {status}"


@app.command("export")
def export_data(
    directory: Annotated[Path, typer.Argument(help="New (or empty) folder for the archive.")],
) -> None:
    """Write this install's data to an archive folder: every table as JSON Lines, every stored
    file (originals and derivatives) with its sha256, and a manifest. Stop the servers first."""
    settings = _settings()

    async def run(services: Services) -> str:
        with RichProgress(console, enabled=_show_progress()) as progress:
            summary = await export_install(services.engine, services.storage, directory, progress)
        return summary.describe()

    try:
        described = _with_services(settings, run)
    except TransferError as exc:
        raise _fail(exc.message, exc.exit_code) from None
    console.print(f"exported to {directory}: {described}")


@app.command("import")
def import_data(
    directory: Annotated[Path, typer.Argument(help="An archive folder made by `iap export`.")],
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="Import into an install that holds data: add only what it lacks."
        ),
    ] = False,
) -> None:
    """Load an archive made by `iap export` into this install (migrated to the same schema, and
    empty unless --merge). Every checksum is verified before anything is written."""
    try:
        archive = open_archive(directory)  # a bad archive fails before the target is touched
    except TransferError as exc:
        raise _fail(exc.message, exc.exit_code) from None
    settings = _settings()

    async def run(services: Services) -> str:
        with RichProgress(console, enabled=_show_progress()) as progress:
            summary = await import_install(
                services.engine, services.storage, archive, progress, merge=merge
            )
        return summary.describe()

    try:
        described = _with_services(settings, run)
    except TransferError as exc:
        raise _fail(exc.message, exc.exit_code) from None
    console.print(f"imported from {directory}: {described}")
