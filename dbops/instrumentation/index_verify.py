"""Advice measured, not estimated: the newest full backup is restored into a scratch database, each
statement is run with EXPLAIN ANALYZE (rolled back), the advised indexes are really built there, and the
statement is run again. The live database is never touched; the scratch database is dropped after."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS

from dbops.artifacts.reading import artifact_decode, artifact_locate, record_decryption_keys
from dbops.artifacts.workdir import work_folder
from dbops.engines import get_connector
from dbops.exceptions import AnalyzerError
from dbops.instrumentation.analyzer import STATEMENT_TIMEOUT, statement_parse
from dbops.instrumentation.index_advice import IndexSuggestion
from dbops.instrumentation.plans import plan_build
from dbops.services.backups.verify import backup_latest


@dataclass
class MeasuredStatement:
    sql: str
    before_ms: float | None  # None: not executed (a generic plan: its parameters are unknown)
    after_ms: float | None
    indexes_used: list[str] = field(default_factory=list)  # advised indexes in the plan after
    note: str = ""

    @property
    def speedup(self) -> float | None:
        return self.before_ms / self.after_ms if self.before_ms and self.after_ms else None


@dataclass
class IndexVerification:
    backup_id: int
    statements: list[MeasuredStatement] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)  # built in the scratch database


def index_advice_verify(
    *,
    statements: list[str],
    suggestions: list[IndexSuggestion],
    using: str = DEFAULT_DB_ALIAS,
    allow_writes: bool = False,
    timeout: float = STATEMENT_TIMEOUT,
) -> IndexVerification:
    """EXPLAIN ANALYZE of every statement before and after building `suggestions` in a scratch copy of
    the newest backup. A write statement runs (rolled back) only with `allow_writes`."""
    parsed = [statement_parse(sql) for sql in statements]
    for statement in parsed:
        if statement.is_write and not allow_writes:
            raise AnalyzerError(
                "Verifying runs the statement (in a scratch database, rolled back), and it is a write: allow "
                "running it to verify it.",
                parameter="analyze",
            )
    if not suggestions:
        raise AnalyzerError("No accepted index to verify.")
    connector = get_connector(using)
    backup_record = backup_latest(database=using)
    verification = IndexVerification(backup_id=backup_record.pk, indexes=[s.name for s in suggestions])
    timeout_ms = int(timeout * 1000)
    quote = connector.connection.ops.quote_name
    with work_folder(purpose="verify") as workdir:
        found = artifact_locate(backup_record, workdir)
        if found.path is None:
            raise found.failure()
        decoded = artifact_decode(found.path, workdir, decryption_keys=record_decryption_keys(backup_record))
        with connector.scratch_restore(decoded.path, fmt=decoded.fmt) as scratch, scratch.session() as session:
            tables = sorted({s.table for s in suggestions})
            session.execute([f"ANALYZE {quote(table)}" for table in tables])  # a restore brings no statistics
            before = [_run(session, statement, timeout_ms) for statement in parsed]
            session.execute([s.candidate.create_sql(quote, name=s.name) for s in suggestions])
            session.execute([f"ANALYZE {quote(table)}" for table in tables])
            names = set(verification.indexes)
            for statement, (before_ms, _) in zip(parsed, before, strict=True):
                after_ms, used = _run(session, statement, timeout_ms)
                note = "" if before_ms is not None else "generic plan ($n parameters): estimated, not executed"
                verification.statements.append(
                    MeasuredStatement(statement.sql, before_ms, after_ms, sorted(used & names), note)
                )
    return verification


def _run(session, statement, timeout_ms: int) -> tuple[float | None, set[str]]:
    analyze = statement.parameter_count == 0
    raw = session.explain(
        statement.sql, analyze=analyze, parameter_count=statement.parameter_count, timeout_ms=timeout_ms
    )
    plan = plan_build(raw[0]["Plan"], analyzed=analyze)
    return raw[0].get("Execution Time"), {node.index_name for node in plan.walk() if node.index_name}
