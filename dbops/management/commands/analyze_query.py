"""analyze_query: a statement's plan as a tree, the costliest nodes marked, and index advice."""

from __future__ import annotations

from dataclasses import asdict

from django.core.management.base import CommandError

from dbops.instrumentation.analyzer import LARGE_TABLE_ROWS, STATEMENT_TIMEOUT, analysis_render, query_analyze
from dbops.instrumentation.index_advice import ACCEPTED, MIN_COST_FACTOR, UNPROVEN, UNVALIDATED
from dbops.instrumentation.index_migration import index_migration_write
from dbops.instrumentation.index_usage import indexes_unused_list
from dbops.instrumentation.index_verify import index_advice_verify
from dbops.instrumentation.slow_queries import slow_queries_analyze
from dbops.instrumentation.workload import WORKLOAD_STATEMENTS, workload_advise
from dbops.management.base import DbopsCommand
from dbops.management.options import add_database_option, add_json_option, count
from dbops.management.output import Page, human_bytes, write_json, write_more


class Command(DbopsCommand):
    help = (
        "Explains a SQL statement (or, with --slow, the slowest captured statements) on PostgreSQL: an indented "
        "plan tree with the costliest nodes marked, and CREATE INDEX / models.Index advice for sequential scans "
        "of large tables filtered on unindexed columns. --analyze runs the statement inside a rolled-back "
        "transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "sql", nargs="?", help="The statement to explain (quote it). Omit with --slow, --workload or --unused."
        )
        parser.add_argument(
            "--slow",
            action="store_true",
            help="Analyze the slowest statements from the profiler's store and pg_stat_statements instead.",
        )
        parser.add_argument(
            "--workload",
            action="store_true",
            help="Advise over the top captured statements at once: indexes serving several statements first, "
            "each with its total estimated benefit.",
        )
        parser.add_argument(
            "--unused",
            action="store_true",
            help="List unused, duplicate and prefix indexes with their sizes (from the statistics views).",
        )
        parser.add_argument(
            "--limit",
            type=count,
            metavar="N",
            help=f"At most N statements with --slow (default 5) or --workload (default {WORKLOAD_STATEMENTS}), N "
            "indexes with --unused (default 50); 0 for all; the rest are counted, not shown.",
        )
        parser.add_argument(
            "--write-migration",
            metavar="APP",
            help="Write a migration of APP adding the accepted indexes (AddIndexConcurrently on PostgreSQL) and "
            "print the Meta.indexes lines to add to its models.",
        )
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Restore the newest backup into a scratch database, build the advised indexes there and show "
            "EXPLAIN ANALYZE times before and after.",
        )
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
        sql, slow, workload, unused = options["sql"], options["slow"], options["workload"], options["unused"]
        if [bool(sql), slow, workload, unused].count(True) != 1:
            raise CommandError(
                'Give one SQL statement, --slow, --workload or --unused (e.g. analyze_query "SELECT ..." --analyze).'
            )
        if (options["write_migration"] or options["verify"]) and (slow or unused):
            raise CommandError("--write-migration and --verify go with one statement or --workload.")
        if options["min_rows"] < 0:
            raise CommandError(f"--min-rows must be 0 or more; got {options['min_rows']}.")
        if unused:
            limit = 50 if options["limit"] is None else options["limit"]
            self._present_unused(indexes_unused_list(using=options["database"], limit=limit or None), limit)
            return
        common = {
            "analyze": options["analyze"],
            "using": options["database"],
            "large_table_rows": options["min_rows"],
            "min_factor": options["min_factor"],
            "timeout": options["timeout"],
        }
        if slow:
            limit = 5 if options["limit"] is None else options["limit"]
            report = slow_queries_analyze(limit=limit or None, **common)
            self._present_slow(report, limit=limit, as_json=options["json"])
            return
        if workload:
            limit = WORKLOAD_STATEMENTS if options["limit"] is None else options["limit"]
            common.pop("analyze")
            advice = workload_advise(limit=limit or None, **common)
            self._present_workload(advice, limit=limit, as_json=options["json"])
            statements = [item.analysis.sql for item in advice.statements if item.analysis]
            advised = [index.suggestion for index in advice.chosen]
        else:
            analysis = query_analyze(sql=sql, **common)
            if options["json"]:
                write_json(self.stdout, analysis.to_dict())
            else:
                for line in analysis_render(analysis):
                    self.stdout.write(line)
            statements = [analysis.sql]
            advised = analysis.suggestions + [s for s in analysis.rejected if s.status == UNPROVEN]
        self._close_the_loop(statements, advised, options)

    def _close_the_loop(self, statements: list[str], advised: list, options) -> None:
        if options["verify"]:
            verification = index_advice_verify(
                statements=statements,
                suggestions=[s for s in advised if s.status in (ACCEPTED, UNVALIDATED, UNPROVEN)],
                using=options["database"],
                allow_writes=options["analyze"],
                timeout=options["timeout"],
            )
            self.stdout.write(
                f"Verified on a scratch copy of backup #{verification.backup_id} with "
                f"{', '.join(verification.indexes)} built (EXPLAIN ANALYZE, real times):"
            )
            for statement in verification.statements:
                self.stdout.write(f"  {' '.join(statement.sql.split())[:100]}")
                if statement.before_ms is None:
                    self.stdout.write(f"    {statement.note}; uses {', '.join(statement.indexes_used) or 'none'}")
                    continue
                speedup = f" ({statement.speedup:,.1f}x faster)" if statement.speedup else ""
                self.stdout.write(
                    f"    before {statement.before_ms:.3f} ms, after {statement.after_ms:.3f} ms{speedup}; "
                    f"uses {', '.join(statement.indexes_used) or 'none of them'}"
                )
        if options["write_migration"]:
            accepted = [s for s in advised if s.status == ACCEPTED]
            migration = index_migration_write(
                app_label=options["write_migration"], suggestions=accepted, using=options["database"]
            )
            self.stdout.write(self.style.SUCCESS(f"Wrote {migration.path} ({migration.name})."))
            for suggestion, why in migration.skipped:
                self.stdout.write(f"  not in it: {suggestion.name} ({why})")
            self.stdout.write("Add to the models' Meta.indexes (else the next makemigrations removes them):")
            for model, lines in migration.meta_indexes.items():
                self.stdout.write(f"  # {model}")
                for line in lines:
                    self.stdout.write(f"  {line},")

    def _present_unused(self, report, limit: int) -> None:
        since = f" (statistics since {report.statistics_since:%Y-%m-%d %H:%M})" if report.statistics_since else ""
        self.stdout.write(
            f"{report.total} index(es) that cost space and writes for nothing, "
            f"{human_bytes(report.total_bytes)}{since}:"
        )
        for finding in report.findings:
            other = f" of {finding.other}" if finding.other else ""
            self.stdout.write(
                f"  {finding.problem}{other}: {finding.name} on {finding.table}, {human_bytes(finding.size_bytes)}, "
                f"{finding.scans} scans"
            )
            self.stdout.write(f"    {finding.definition}")
        write_more(self.stdout, Page(items=report.findings, total=report.total, limit=limit), "indexes")

    def _present_workload(self, advice, *, limit: int, as_json: bool) -> None:
        if as_json:
            write_json(
                self.stdout,
                {
                    "total": advice.total,
                    "limit": limit,
                    "sources_unavailable": advice.sources_unavailable,
                    "statements": [
                        {"sql": item.statement.sql, "calls": item.statement.calls, "error": item.error}
                        for item in advice.statements
                    ],
                    "indexes": [
                        {
                            **asdict(index.suggestion),
                            "chosen": index.chosen,
                            "verdict": index.verdict,
                            "total_benefit": index.total_benefit,
                            "served": [asdict(s) for s in index.served],
                        }
                        for index in advice.indexes
                    ],
                },
            )
            return
        for source, reason in advice.sources_unavailable.items():
            self.stdout.write(self.style.WARNING(f"{source}: not used ({reason})"))
        if advice.hypothetical_unavailable:
            self.stdout.write(
                f"UNVALIDATED advice (hypothetical indexes unavailable: {advice.hypothetical_unavailable})"
            )
        self.stdout.write(f"Workload: the {len(advice.statements)} slowest of {advice.total} captured statements")
        for number, item in enumerate(advice.statements, start=1):
            state = f"cannot analyze: {item.error}" if item.error else f"{item.statement.calls or 1} calls"
            self.stdout.write(f"  #{number} {' '.join(item.statement.sql.split())[:100]}  ({state})")
        if not advice.indexes:
            self.stdout.write("Index advice: none (no index makes any of them cheap enough).")
        for index in advice.indexes:
            suggestion = index.suggestion
            status = "ADVISED" if index.chosen else "NOT ADVISED"
            self.stdout.write(
                f"{status} {suggestion.name}: total estimated benefit {index.total_benefit:,.0f} "
                f"(cost saved x calls), {human_bytes(suggestion.estimated_size_bytes)}; {index.verdict}"
            )
            for served in index.served:
                self.stdout.write(
                    f"    #{served.number}: cost {served.cost_before:,.2f} -> {served.cost_after:,.2f}, "
                    f"{served.calls} calls"
                )
            if index.chosen:
                self.stdout.write(f"    SQL:    {suggestion.create_index_sql}")
                self.stdout.write(f"    Django: {suggestion.django_index}")
        write_more(self.stdout, Page(items=advice.statements, total=advice.total, limit=limit), "captured statements")

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
