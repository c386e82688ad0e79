"""analyze_query: a statement's plan as a tree, the costliest nodes marked, and index advice."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbops.instrumentation.analyzer import LARGE_TABLE_ROWS, STATEMENT_TIMEOUT, analysis_render, query_analyze
from dbops.instrumentation.index_advice import MIN_COST_FACTOR
from dbops.instrumentation.slow_queries import slow_queries_analyze
from dbops.management.base import DbopsCommand
from dbops.management.options import add_database_option, add_json_option, add_limit_option
from dbops.management.output import Page, write_json, write_more


class Command(DbopsCommand):
    help = (
        "Explains a SQL statement (or, with --slow, the slowest captured statements) on PostgreSQL: an indented "
        "plan tree with the costliest nodes marked, and CREATE INDEX / models.Index advice for sequential scans "
        "of large tables filtered on unindexed columns. --analyze runs the statement inside a rolled-back "
        "transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument("sql", nargs="?", help="The statement to explain (quote it). Omit with --slow.")
        parser.add_argument(
            "--slow",
            action="store_true",
            help="Analyze the slowest statements from the profiler's store and pg_stat_statements instead.",
        )
        add_limit_option(parser, what="of the slowest statements with --slow (each is explained)", default=5)
        parser.add_argument(
            "--analyze",
            action="store_true",
            help="EXPLAIN ANALYZE, BUFFERS: really run the statement, inside a transaction that is rolled back.",
        )
        parser.add_argument(
            "--min-rows",
            type=int,
            default=LARGE_TABLE_ROWS,
            help=f"Tables with fewer rows get no index advice (default {LARGE_TABLE_ROWS:,}).",
        )
        parser.add_argument(
            "--min-factor",
            type=float,
            default=MIN_COST_FACTOR,
            metavar="X",
            help=f"Advise an index only when it makes the estimated cost X times lower (default {MIN_COST_FACTOR:g}).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=STATEMENT_TIMEOUT,
            metavar="SECONDS",
            help=f"Cancel the statement (and every plan made for it) after this long (default {STATEMENT_TIMEOUT:g}).",
        )
        add_json_option(parser, what="the analysis")
        add_database_option(parser)

    def handle(self, *args, **options):
        sql, slow = options["sql"], options["slow"]
        if bool(sql) == slow:
            raise CommandError('Give either one SQL statement or --slow (e.g. analyze_query "SELECT ..." --analyze).')
        if options["min_rows"] < 0:
            raise CommandError(f"--min-rows must be 0 or more; got {options['min_rows']}.")
        common = {
            "analyze": options["analyze"],
            "using": options["database"],
            "large_table_rows": options["min_rows"],
            "min_factor": options["min_factor"],
            "timeout": options["timeout"],
        }
        if slow:
            report = slow_queries_analyze(limit=options["limit"] or None, **common)
            self._present_slow(report, limit=options["limit"], as_json=options["json"])
            return
        analysis = query_analyze(sql=sql, **common)
        if options["json"]:
            write_json(self.stdout, analysis.to_dict())
            return
        for line in analysis_render(analysis):
            self.stdout.write(line)

    def _present_slow(self, report, *, limit: int, as_json: bool) -> None:
        page = Page(items=report.analyses, total=report.total, limit=limit)
        if as_json:
            write_json(
                self.stdout,
                {
                    "sources_unavailable": report.sources_unavailable,
                    "total": page.total,
                    "limit": page.limit,
                    "statements": [
                        {
                            "sql": item.statement.sql,
                            "source": item.statement.source,
                            "calls": item.statement.calls,
                            "mean_ms": item.statement.mean_ms,
                            "error": item.error,
                            "analysis": item.analysis.to_dict() if item.analysis else None,
                        }
                        for item in report.analyses
                    ],
                },
            )
            return
        for source, reason in report.sources_unavailable.items():
            self.stdout.write(self.style.WARNING(f"{source}: not used ({reason})"))
        if not report.analyses:
            self.stdout.write("No slow statements captured yet.")
        for number, item in enumerate(report.analyses, start=1):
            statement = item.statement
            stats = f"{statement.calls} calls, mean {statement.mean_ms:.3f} ms" if statement.mean_ms is not None else ""
            self.stdout.write(self.style.MIGRATE_HEADING(f"#{number} [{statement.source}] {stats}"))
            self.stdout.write(f"  {' '.join(statement.sql.split())}")
            if item.error:
                self.stdout.write(self.style.ERROR(f"  cannot analyze: {item.error}"))
                continue
            for line in analysis_render(item.analysis):
                self.stdout.write(f"  {line}")
        write_more(self.stdout, page, "captured statements")
