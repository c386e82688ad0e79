"""SQL query profiling for requests, celery tasks and management commands.

`QueryProfile` is an execute wrapper (Django `connection.execute_wrapper`) and a context manager: it
tags every statement with a sqlcommenter comment (route or GraphQL operation and the calling code)
so PostgreSQL's own logs and pg_stat_statements lead back to the code, times it, and at the end
logs one structured summary, warns about slow statements and N+1 patterns (one normalized
statement repeated >= N_PLUS_ONE_THRESHOLD times), and upserts the slow ones into `SlowQuery` in one
statement outside the profiled transaction. The per-statement path is kept to a few dict lookups;
everything else happens once at the end.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import hashlib
import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, TypeVar
from urllib.parse import quote

from django.conf import settings
from django.db import connections, router
from django.utils import timezone

from dbops.instrumentation.call_sites import _code_locations, application_frame, call_site
from dbops.instrumentation.n_plus_one import NPlusOneDetected, n_plus_one_check
from dbops.models.profiling import SlowQuery

logger = logging.getLogger("dbops.profiling")
_getframe, perf_counter = sys._getframe, time.perf_counter  # module globals: one lookup fewer per statement
FuncT = TypeVar("FuncT", bound=Callable[..., Any])

# What the running code is doing, finer than the route: a GraphQL field path (graphql-core Path, or
# a string such as "dataloader:rolesByUserId"). Set by the GraphQL execution context and loaders.
code_path: contextvars.ContextVar[Any] = contextvars.ContextVar("dbops_code_path", default=None)
_current_profile: contextvars.ContextVar[QueryProfile | None] = contextvars.ContextVar(
    "dbops_query_profile", default=None
)

_SAMPLE_CHARS = 4000


def current_profile() -> QueryProfile | None:
    """The profile recording this request/task, if any."""
    return _current_profile.get()


def path_label(value: Any) -> str:
    """`users.roles` for a graphql-core Path of users[3].roles; strings pass through."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return ".".join(str(key) for key in value.as_list() if not isinstance(key, int))


# -- normalization ----------------------------------------------------------------------------------
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NUMBER_LITERAL = re.compile(r"(?<![\w$.\"])-?\d+(?:\.\d+)?(?![\w\"])")
_PLACEHOLDER_LIST = re.compile(r"\bIN\s*\((?:\s*(?:%s|\?)\s*,)*\s*(?:%s|\?)\s*\)", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
# transaction control waits on the statements around it (a commit's flush): never a slow query of its own
_TRANSACTION_CONTROL = re.compile(r"\s*(?:SAVEPOINT|RELEASE\s+SAVEPOINT|ROLLBACK\s+TO\s+SAVEPOINT)\b", re.I)


def normalize_sql(sql: str) -> tuple[str, str]:
    """(fingerprint, normalized statement): literals masked, IN lists collapsed, whitespace squeezed."""
    normalized = _STRING_LITERAL.sub("?", sql)
    normalized = _NUMBER_LITERAL.sub("?", normalized)
    normalized = _PLACEHOLDER_LIST.sub("IN (...)", normalized)
    normalized = _SPACES.sub(" ", normalized).strip()
    return hashlib.sha1(normalized.encode(), usedforsecurity=False).hexdigest(), normalized


@functools.lru_cache(maxsize=2048)
def _statement_facts(sql: str) -> tuple[str, str, str]:
    """normalize_sql's (fingerprint, statement) and the statement's masked sample: once per distinct text."""
    fingerprint, statement = normalize_sql(sql)
    return fingerprint, statement, mask_sql(statement)


def mask_sql(sql: str) -> str:
    """A statement safe to log or store: placeholders stay placeholders, inline literals become ?."""
    masked = _NUMBER_LITERAL.sub("?", _STRING_LITERAL.sub("?", sql))
    return masked[:_SAMPLE_CHARS]


def sqlcomment(tags: dict[str, str]) -> str:
    """A sqlcommenter comment: keys sorted, values URL-encoded and single-quoted."""
    body = ",".join(f"{key}='{quote(str(value), safe='')}'" for key, value in sorted(tags.items()) if value)
    return f" /*{body}*/" if body else ""


@dataclass
class StatementGroup:
    fingerprint: str
    statement: str
    sample_sql: str
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    last_ms: float = 0.0
    call_site: str = ""
    code_path: str = ""


@dataclass
class ProfileSummary:
    source: str
    count: int
    total_ms: float
    slowest: StatementGroup | None
    duplicates: int
    groups: list[StatementGroup] = field(default_factory=list)
    slow: list[StatementGroup] = field(default_factory=list)
    n_plus_one: list[StatementGroup] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        slowest = self.slowest
        return {
            "source": self.source,
            "queries": self.count,
            "total_ms": round(self.total_ms, 3),
            "duplicates": self.duplicates,
            "slowest_ms": round(slowest.max_ms, 3) if slowest else 0.0,
            "slowest_sql": slowest.sample_sql[:300] if slowest else "",
            "slowest_call_site": slowest.call_site if slowest else "",
            "slow": len(self.slow),
            "n_plus_one": [f"{group.count}x {group.statement[:120]}" for group in self.n_plus_one],
        }


class QueryProfile:
    """Times every statement on the wrapped connections while active (a context manager)."""

    def __init__(
        self,
        source: str,
        *,
        using: tuple[str, ...] | None = None,
        slow_threshold_ms: float | None = None,
        n_plus_one_threshold: int | None = None,
        log_all: bool | None = None,
        persist: bool = True,
        tags: dict[str, str] | None = None,
        log_in_background: bool = False,
    ) -> None:
        self.source = source
        self.log_in_background = log_in_background  # the summary's records written by summary_log_writer
        self.using = using or tuple(settings.DATABASES)
        self.slow_threshold_ms = settings.SLOW_QUERY_THRESHOLD_MS if slow_threshold_ms is None else slow_threshold_ms
        self.n_plus_one_threshold = (
            settings.N_PLUS_ONE_THRESHOLD if n_plus_one_threshold is None else n_plus_one_threshold
        )
        self.log_all = settings.LOG_ALL_QUERIES if log_all is None else log_all
        self.persist = persist
        # (sql, ms, call site, code path) per statement, in order
        self.records: list[tuple[str, float, str, Any]] = []
        self.summary: ProfileSummary | None = None
        self._tags: dict[str, str] = {"route": source, **(tags or {})}
        self._comment_cache: dict[str, tuple[str, str, str]] = {}
        # statement text -> (depth, code, instruction offset, callee's code, comments) of its last call site
        self._site_hints: dict[str, tuple[int, CodeType, int, CodeType, tuple[str, str, str]]] = {}
        self._wrapped: list = []  # the connections this profile wraps while active
        self._token: contextvars.Token | None = None
        self._started = 0.0
        self.elapsed_ms = 0.0

    # -- tags ---------------------------------------------------------------------------------------
    def tag(self, **tags: str) -> None:
        """Adds request-level sqlcommenter tags (e.g. graphql_operation) for the statements that follow."""
        self._tags.update({key: value for key, value in tags.items() if value})
        self._comment_cache.clear()
        self._site_hints.clear()  # they hold the comments

    def _comments(self, site: str) -> tuple[str, str, str]:
        """(site, its comment, the comment with % doubled), one tuple per call site while the tags hold."""
        entry = self._comment_cache.get(site)
        if entry is None:
            comment = sqlcomment({**self._tags, "code_location": site})
            entry = self._comment_cache[site] = (site, comment, comment.replace("%", "%%"))
        return entry

    # -- the execute wrapper ------------------------------------------------------------------------
    def _site_entry(self, sql: str, depth: int) -> tuple[str, str, str]:
        """The call site's (site, comment, escaped comment) found by walking up from `depth`, remembered for
        the statement text with the frame's depth, code, line and its callee's code."""
        found = application_frame(depth)
        if found is None:
            return self._comments(call_site(depth + 1))  # no application frame: the fallback walks, every time
        frame, found_depth = found
        depth = found_depth - 1  # from the caller (__call__), where the hint is read
        entry = self._comments(f"{_code_locations[frame.f_code][1]}:{frame.f_lineno}")
        self._site_hints[sql] = (depth, frame.f_code, frame.f_lasti, sys._getframe(depth).f_code, entry)
        return entry

    def __call__(self, execute, sql, params, many, context):
        # Walking up materializes a frame object per frame (~0.5 us each): a statement text seen before
        # jumps straight to the depth of its last call site, checked by that frame's code, instruction and
        # callee (f_lasti, not f_lineno: the line is computed from the line table on every read).
        hint = self._site_hints.get(sql)
        entry = None
        if hint is not None:
            depth, code, instruction, callee, entry = hint
            try:
                frame = _getframe(depth)
            except ValueError:
                frame = None
            if (
                frame is None
                or frame.f_code is not code
                or frame.f_lasti != instruction
                or (_getframe(depth - 1).f_code is not callee)
            ):
                entry = None
        if entry is None:
            entry = self._site_entry(sql, 2)
        started = perf_counter()
        try:
            # A parameterized statement goes through %-formatting: the comment's % must be doubled.
            return execute(sql + (entry[1] if params is None else entry[2]), params, many, context)
        finally:
            self.records.append((sql, (perf_counter() - started) * 1000.0, entry[0], code_path.get()))

    # -- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> QueryProfile:
        # What connection.execute_wrapper() does (append now, pop at the end), without a generator-based
        # context manager per connection and an ExitStack around them on every request.
        self._wrapped = [connections[alias] for alias in self.using]
        for connection in self._wrapped:
            connection.execute_wrappers.append(self)
        self._token = _current_profile.set(self)
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.elapsed_ms = (time.perf_counter() - self._started) * 1000.0
        _current_profile.reset(self._token)
        for connection in reversed(self._wrapped):  # unwrap first: the profiler's own writes are not profiled
            connection.execute_wrappers.pop()
        self._wrapped = []
        try:
            self.summary = self.finish()
        except NPlusOneDetected:
            raise  # N_PLUS_ONE_RAISE: the one failure profiling is asked to cause (tests)
        except Exception:  # profiling must never break the request or task it observes
            logger.exception("query profile of %s could not be summarized", self.source)

    def finish(self) -> ProfileSummary:
        summary = summarize(self.records, source=self.source, slow_threshold_ms=self.slow_threshold_ms,
                            n_plus_one_threshold=self.n_plus_one_threshold)  # fmt: skip
        all_records = self.records if self.log_all else None
        if self.log_in_background:
            summary_log_writer.submit(summary, all_records)
        else:
            _log_summary(summary, all_records)
        if self.persist and summary.slow:
            slow_queries_record(groups=summary.slow, source=self._tags.get("graphql_operation") or self.source)
        if settings.N_PLUS_ONE_RAISE and summary.n_plus_one:
            n_plus_one_check(summary.n_plus_one, source=self.source)
        return summary

    @property
    def total_ms(self) -> float:
        if self.summary is not None:  # summed once at the end
            return self.summary.total_ms
        return sum(record[1] for record in self.records)

    def server_timing(self) -> str:
        """The Server-Timing header value: database time and statement count, and the whole span."""
        return f'db;dur={self.total_ms:.2f};desc="{len(self.records)} queries", total;dur={self.elapsed_ms:.2f}'


def summarize(
    records: list[tuple[str, float, str, Any]], *, source: str, slow_threshold_ms: float, n_plus_one_threshold: int
) -> ProfileSummary:
    # One pass of plain arithmetic per statement, keyed by the raw text; normalizing is once per distinct text.
    by_text: dict[str, list] = {}  # sql -> [count, total ms, max ms, first call site, first code path]
    slow_records = []
    total_ms = 0.0
    for record in records:
        sql, duration_ms = record[0], record[1]
        total_ms += duration_ms
        entry = by_text.get(sql)
        if entry is None:
            by_text[sql] = [1, duration_ms, duration_ms, record[2], record[3]]
        else:
            entry[0] += 1
            entry[1] += duration_ms
            if duration_ms > entry[2]:
                entry[2] = duration_ms
        if duration_ms >= slow_threshold_ms:
            slow_records.append(record)
    groups: dict[str, StatementGroup] = {}
    for sql, (count, text_ms, text_max_ms, site, path) in by_text.items():
        fingerprint, statement, sample_sql = _statement_facts(sql)
        group = groups.get(fingerprint)
        if group is None:  # the first text of a fingerprint holds its first statement: its call site
            groups[fingerprint] = StatementGroup(
                fingerprint, statement, sample_sql, count, text_ms, text_max_ms, call_site=site, code_path=path
            )
        else:
            group.count += count
            group.total_ms += text_ms
            group.max_ms = max(group.max_ms, text_max_ms)
    slow: dict[str, StatementGroup] = {}
    for sql, duration_ms, site, path in slow_records:
        if _TRANSACTION_CONTROL.match(sql):
            continue
        fingerprint, statement, _sample = _statement_facts(sql)
        slow_group = slow.get(fingerprint)
        if slow_group is None:
            slow_group = slow[fingerprint] = StatementGroup(fingerprint, statement, "")
        slow_group.count += 1
        slow_group.total_ms += duration_ms
        slow_group.max_ms = max(slow_group.max_ms, duration_ms)
        slow_group.last_ms = duration_ms
        slow_group.sample_sql, slow_group.call_site, slow_group.code_path = mask_sql(sql), site, path
    for group in groups.values():
        group.code_path = path_label(group.code_path)
    for group in slow.values():
        group.code_path = path_label(group.code_path)
    ordered = sorted(groups.values(), key=lambda group: group.total_ms, reverse=True)
    slowest = max(groups.values(), key=lambda group: group.max_ms, default=None)
    return ProfileSummary(
        source=source,
        count=len(records),
        total_ms=total_ms,
        slowest=slowest,
        duplicates=len(records) - len(groups),
        groups=ordered,
        slow=sorted(slow.values(), key=lambda group: group.fingerprint),
        n_plus_one=[group for group in ordered if group.count >= n_plus_one_threshold],
    )


def _log_summary(summary: ProfileSummary, all_records: list | None) -> None:
    if all_records is not None:
        for sql, duration_ms, site, path in all_records:
            logger.info(
                "query %.2f ms at %s: %s",
                duration_ms,
                site,
                mask_sql(sql),
                extra={"duration_ms": round(duration_ms, 3), "call_site": site, "code_path": path_label(path)},
            )
    for group in summary.slow:
        logger.warning(
            "slow query: %.1f ms (max) x%d at %s%s: %s",
            group.max_ms,
            group.count,
            group.call_site,
            f" (GraphQL field {group.code_path})" if group.code_path else "",
            group.sample_sql,
            extra={"duration_ms": round(group.max_ms, 3), "call_site": group.call_site, "source": summary.source},
        )
    for group in summary.n_plus_one:
        where = f" (GraphQL field {group.code_path})" if group.code_path else ""
        logger.warning(
            "N+1 queries: %d x the same statement at %s%s: %s",
            group.count,
            group.call_site,
            where,
            group.statement[:500],
            extra={"repeats": group.count, "call_site": group.call_site, "code_path": group.code_path},
        )
    if logger.isEnabledFor(logging.INFO):  # the structured summary is only built for a handler that takes it
        logger.info(
            "query summary for %s: %d queries, %.1f ms, %d duplicates",
            summary.source,
            summary.count,
            summary.total_ms,
            summary.duplicates,
            extra={"query_summary": summary.as_dict()},
        )


class SummaryLogWriter:
    """Writes finished profiles' log records on one daemon thread per process, in the order they came.

    A 50-statement request's summary and N+1 warning cost about 0.3 M instructions to build, format and
    write (a quarter of what profiling adds to it); on this thread the response does not wait for them.
    Each summary is logged in a copy of the submitting request's context variables (filters that read
    them see the request's values). The queue is drained before the interpreter exits (atexit) and by
    `drain()` (tests); a forked child starts a thread of its own. A full queue, or a thread that cannot
    start (interpreter shutdown), logs inline: a record is late at worst, never lost.
    """

    def __init__(self, max_pending: int = 10_000) -> None:
        self._max_pending = max_pending
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # the parent's thread does not exist in the child
        atexit.register(self.drain)  # runs before logging's own atexit flush, registered earlier

    def _reset(self) -> None:
        self._queue: queue.Queue = queue.Queue(self._max_pending)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, summary: ProfileSummary, all_records: list | None) -> None:
        if self._thread is None and not self._start():
            _log_summary(summary, all_records)
            return
        try:
            self._queue.put_nowait((contextvars.copy_context(), summary, all_records))
        except queue.Full:
            _log_summary(summary, all_records)

    def _start(self) -> bool:
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="dbops-profile-log", daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # "can't create new thread at interpreter shutdown"
                    return False
                self._thread = thread
        return True

    def _run(self) -> None:
        pending = self._queue
        while True:
            context, summary, all_records = pending.get()
            try:
                context.run(_log_summary, summary, all_records)
            except Exception:  # a failing handler must not end the thread
                logger.exception("query profile of %s could not be logged", summary.source)
            finally:
                pending.task_done()

    def drain(self, timeout: float = 10.0) -> bool:
        """Waits until every submitted summary is written; False if `timeout` seconds were not enough."""
        pending = self._queue
        deadline = time.monotonic() + timeout
        with pending.all_tasks_done:
            while pending.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                pending.all_tasks_done.wait(remaining)
        return True


summary_log_writer = SummaryLogWriter()


def profile_logs_drain(timeout: float = 10.0) -> bool:
    """Waits until the records of every finished request profile are written (see SummaryLogWriter)."""
    return summary_log_writer.drain(timeout)


# -- persistence ------------------------------------------------------------------------------------
_UPSERT = """
INSERT INTO {table} (fingerprint, statement, sample_sql, count, total_ms, max_ms, last_ms, call_site, source,
                     first_seen, last_seen)
VALUES {rows}
ON CONFLICT (fingerprint) DO UPDATE SET
    count = {table}.count + EXCLUDED.count,
    total_ms = {table}.total_ms + EXCLUDED.total_ms,
    max_ms = CASE WHEN EXCLUDED.max_ms > {table}.max_ms THEN EXCLUDED.max_ms ELSE {table}.max_ms END,
    last_ms = EXCLUDED.last_ms,
    sample_sql = EXCLUDED.sample_sql,
    call_site = EXCLUDED.call_site,
    source = EXCLUDED.source,
    last_seen = EXCLUDED.last_seen
"""


def slow_queries_record(*, groups: list[StatementGroup], source: str, using: str | None = None) -> None:
    """Upserts slow statement groups in one statement that commits on its own.

    Inside a transaction (ATOMIC_REQUESTS, a task in `atomic`) the write goes through a separate
    connection, so a rollback of the profiled work does not erase the evidence of its slow queries.
    A failure here is logged, never raised: profiling must not break the request.
    """
    connection = connections[using or router.db_for_write(SlowQuery)]  # the operations database
    own_connection = connection.in_atomic_block
    if own_connection:
        connection = connections.create_connection(connection.alias)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params: list[Any] = []
    for group in sorted(groups, key=lambda group: group.fingerprint):  # one lock order for every writer
        params += [group.fingerprint, group.statement, group.sample_sql, group.count, group.total_ms,
                   group.max_ms, group.last_ms, group.call_site[:255], source[:255], now, now]  # fmt: skip
    row = "(" + ", ".join(["%s"] * 11) + ")"
    sql = _UPSERT.format(table=connection.ops.quote_name(SlowQuery._meta.db_table), rows=", ".join([row] * len(groups)))
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    except Exception:
        logger.exception("could not record %d slow queries", len(groups))
    finally:
        if own_connection:
            connection.close()


def slow_queries_top(*, limit: int | None = 20) -> list[SlowQuery]:
    """The slow statements that cost the most in total (count x duration), worst first (limit None: all)."""
    return list(SlowQuery.objects.order_by("-total_ms", "-max_ms")[:limit])


# -- entry points for tasks and commands ----------------------------------------------------------
def query_profile(source: str, **options: Any) -> QueryProfile:
    """`with query_profile("command:seed_data"):` profiles the block regardless of the setting."""
    return QueryProfile(source, **options)


def profiled(source: str | None = None) -> Callable[[FuncT], FuncT]:
    """Decorator for celery tasks and command handlers; profiles only when QUERY_PROFILING_ENABLED."""

    def decorate(func: FuncT) -> FuncT:
        label = source or f"{func.__module__}.{func.__qualname__}"

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if not settings.QUERY_PROFILING_ENABLED or current_profile() is not None:
                return func(*args, **kwargs)
            with QueryProfile(label):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


# Every celery task is profiled while QUERY_PROFILING_ENABLED, through the task signals (the project
# connects them where it makes its celery app); the worker runs a task's prerun, body and postrun on one thread.
_task_profiles: dict[str, QueryProfile] = {}


def task_profile_start(task_id=None, task=None, **_: Any) -> None:
    if task_id is None or not settings.QUERY_PROFILING_ENABLED or current_profile() is not None:
        return
    profile = QueryProfile(f"task:{getattr(task, 'name', task_id)}")
    profile.__enter__()
    _task_profiles[task_id] = profile


def task_profile_finish(task_id=None, **_: Any) -> None:
    profile = _task_profiles.pop(task_id, None) if task_id is not None else None
    if profile is not None:
        profile.__exit__(None, None, None)
