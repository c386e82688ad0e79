"""Realistic, reproducible seed data for every domain model, fast enough for a million rows.

One scale unit is about 1,000 rows; audit logs and dictionary entries are the bulk, as in real data.
Faker runs only while building small value pools; the per-row loop draws from the pools with one
`random.Random` per table (seeded from the seed and the table), so the same seed gives the same data.
Rows get explicit ids after the current maximum, which makes foreign keys free to compute and lets a
re-seed of an emptied database reproduce the ids too. Engines with COPY (PostgreSQL) are fed through it;
others through batched `executemany` inserts (not `bulk_create`, which would stamp `auto_now_add` fields with
the current time and break reproducibility).
"""

from __future__ import annotations

import json
import mimetypes
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, models, transaction
from django.db.models import Max

from dbops.engines import Connector, get_connector
from dbops.exceptions import SeedError
from multipult.core.models import AuditLog, Concept, Dictionary, DictionaryEntry, Role, StoredFile, User

if TYPE_CHECKING:
    from faker import Faker

UserRole = User.roles.through

# Rows per scale unit; with the fixed roles, --scale 1 is ~1,000 rows and --scale 1000 ~1,000,000.
ROWS_PER_SCALE: dict[str, int] = {
    "users": 20,
    "user_roles": 30,  # every other user has two roles
    "concepts": 50,
    "dictionaries": 5,
    "dictionary_entries": 300,
    "stored_files": 50,
    "audit_logs": 545,
}
ROLES: tuple[tuple[str, str], ...] = (
    ("admin", "Full access to every area."),
    ("editor", "Creates and edits concepts and dictionaries."),
    ("reviewer", "Reviews and approves changes."),
    ("viewer", "Read-only access."),
    ("analyst", "Runs reports and exports."),
    ("curator", "Maintains dictionaries and their entries."),
    ("auditor", "Reads audit logs."),
    ("operator", "Runs backups, restores and other database operations."),
)
MAX_SCALE = 100_000
# Seeded timestamps lie in the two years before this fixed instant (not "now", for reproducibility).
EPOCH_END = 1_767_225_600  # 2026-01-01T00:00:00Z
SPAN_SECONDS = 2 * 365 * 24 * 3600
CHUNK_ROWS = 20_000
POOL_SIZE = 512

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class SeedPlan:
    scale: float
    seed: int
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class SeedResult:
    plan: SeedPlan
    created: dict[str, int] = field(default_factory=dict)
    method: str = ""
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.created.values())


def seed_plan(*, scale: float, seed: int = 0, existing_roles: Iterable[str] = ()) -> SeedPlan:
    """How many rows of each kind `seed_create` would insert for this scale."""
    if not scale > 0:
        raise SeedError(f"The scale must be a positive number, got {scale!r}.", parameter="scale")
    if scale > MAX_SCALE:
        raise SeedError(
            f"The scale {scale:g} is too large (at most {MAX_SCALE:,}, about {MAX_SCALE:,}k rows).", parameter="scale"
        )
    counts = {"roles": len({name for name, _ in ROLES} - set(existing_roles))}
    for label, per_scale in ROWS_PER_SCALE.items():
        counts[label] = max(1, round(per_scale * scale))
    counts["user_roles"] = counts["users"] - counts["users"] // 2  # users 0, 2, 4… get a second role
    counts["user_roles"] += counts["users"]
    return SeedPlan(scale=scale, seed=seed, counts=counts)


def seed_create(
    *,
    scale: float,
    seed: int = 0,
    using: str = DEFAULT_DB_ALIAS,
    progress: ProgressCallback | None = None,
) -> SeedResult:
    """Inserts one seed plan in a single transaction; nothing is left behind if it fails."""
    seed_plan(scale=scale, seed=seed)  # bad input fails before any lock or query
    started = time.perf_counter()
    connector = get_connector(using)
    with transaction.atomic(using=using):
        # Keeps concurrent writers out while ids after the current maximum are handed out (an engine whose
        # write transaction locks the whole database, SQLite's IMMEDIATE one, needs nothing more).
        connector.lock_tables([model._meta.db_table for model in _SEEDED_MODELS], mode="write")
        existing_roles = set(Role.objects.using(using).values_list("name", flat=True))
        plan = seed_plan(scale=scale, seed=seed, existing_roles=existing_roles)
        writer = _writer_for(connector)
        pools = _Pools(seed)
        result = SeedResult(plan=plan, method=writer.method)
        ctx = _Context(plan=plan, pools=pools, using=using, ts_suffix=writer.ts_suffix)
        result.created["roles"] = _create_roles(using, existing_roles)
        ctx.role_ids = list(Role.objects.using(using).order_by("id").values_list("id", flat=True))
        for model in _SEEDED_MODELS:
            ctx.first_id(model)  # before any insert: every foreign key is computed from these
        generators = list(_table_generators(ctx))
        writer.suspend_indexes({model: plan.counts[label] for label, model, _ in generators})
        for label, model, rows in generators:
            created = writer.write(model, rows, total=plan.counts[label], label=label, progress=progress)
            result.created[label] = created
        writer.restore_indexes()
        writer.reset_sequences(list(_SEEDED_MODELS))
    result.seconds = time.perf_counter() - started
    return result


# --- value pools (Faker runs here only) -----------------------------------------------------------


class _Pools:
    def __init__(self, seed: int) -> None:
        from faker import Faker  # imported on use: it is slow to import (start-up time)

        fake = Faker("en_US")
        fake.seed_instance(seed)
        size = POOL_SIZE
        self.first_names = [fake.first_name() for _ in range(size)]
        self.last_names = [fake.last_name() for _ in range(size)]
        self.domains = [fake.free_email_domain() for _ in range(16)] + [fake.domain_name() for _ in range(16)]
        self.phones = [fake.phone_number()[:32] for _ in range(size)] + [""] * (size // 4)
        self.words = sorted({fake.word() for _ in range(size * 2)})
        self.titles = [fake.catch_phrase()[:255] for _ in range(size)]
        self.sentences = [fake.sentence(nb_words=12) for _ in range(size)]
        self.paragraphs = [fake.paragraph(nb_sentences=3) for _ in range(size // 4)] + [""] * (size // 8)
        self.ips: list[str | None] = [fake.ipv4_public() for _ in range(size)] + [fake.ipv6() for _ in range(size // 8)]
        self.ips += [None] * (len(self.ips) // 3)
        self.files = []
        for _ in range(size):
            name = fake.file_name()
            self.files.append((name, mimetypes.guess_type(name)[0] or "application/octet-stream"))
        self.changes = [self._change(fake) for _ in range(size)]

    @staticmethod
    def _change(fake: Faker) -> str:
        field_name = fake.random_element(["name", "description", "value", "email", "is_active", "position"])
        return json.dumps({field_name: [fake.word(), fake.word()], "reason": fake.sentence(nb_words=6)})


@dataclass
class _Context:
    plan: SeedPlan
    pools: _Pools
    using: str
    ts_suffix: str
    role_ids: list[int] = field(default_factory=list)
    first_ids: dict[type[models.Model], int] = field(default_factory=dict)

    def first_id(self, model: type[models.Model]) -> int:
        if model not in self.first_ids:
            current = model.objects.using(self.using).aggregate(top=Max("id"))["top"] or 0
            self.first_ids[model] = current + 1
        return self.first_ids[model]

    def rng(self, table: str) -> random.Random:
        # Reproducible test data, not secrets: a seeded PRNG is the point.
        return random.Random(f"{self.plan.seed}:{table}")  # noqa: S311

    def timestamp(self, rng: random.Random, not_before: int = EPOCH_END - SPAN_SECONDS) -> tuple[int, str]:
        epoch = not_before + int(rng.random() * (EPOCH_END - not_before))
        return epoch, self.format_epoch(epoch)

    def format_epoch(self, epoch: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + self.ts_suffix


# --- row generators: one per table, tuples in the model's concrete-field order ------------------------


def _table_generators(ctx: _Context) -> Iterator[tuple[str, type[models.Model], Iterator[tuple]]]:
    yield "users", User, _user_rows(ctx)
    yield "user_roles", UserRole, _user_role_rows(ctx)
    yield "concepts", Concept, _concept_rows(ctx)
    yield "dictionaries", Dictionary, _dictionary_rows(ctx)
    yield "dictionary_entries", DictionaryEntry, _entry_rows(ctx)
    yield "stored_files", StoredFile, _file_rows(ctx)
    yield "audit_logs", AuditLog, _audit_rows(ctx)


def _user_rows(ctx: _Context) -> Iterator[tuple]:
    rng, pools = ctx.rng("users"), ctx.pools
    first_id = ctx.first_id(User)
    for offset in range(ctx.plan.counts["users"]):
        user_id = first_id + offset
        first, last = rng.choice(pools.first_names), rng.choice(pools.last_names)
        username = f"{first}.{last}{user_id}".lower()[:150]
        joined_epoch, joined = ctx.timestamp(rng)
        last_login = ctx.timestamp(rng, joined_epoch)[1] if rng.random() < 0.8 else None
        # "!" marks an unusable password: seeded users cannot log in until an admin sets one.
        password = f"!{rng.getrandbits(160):040x}"
        is_staff = rng.random() < 0.05
        yield (
            user_id, password, last_login, False, username, first, last,
            f"{username}@{rng.choice(pools.domains)}", is_staff, rng.random() < 0.92, joined,
            rng.choice(pools.phones),
        )  # fmt: skip


def _user_role_rows(ctx: _Context) -> Iterator[tuple]:
    rng = ctx.rng("user_roles")
    first_user, row_id = ctx.first_id(User), ctx.first_id(UserRole)
    role_ids = ctx.role_ids
    for offset in range(ctx.plan.counts["users"]):
        for role_id in rng.sample(role_ids, 2 if offset % 2 == 0 else 1):
            yield row_id, first_user + offset, role_id
            row_id += 1


def _user_ref(ctx: _Context, rng: random.Random, null_ratio: float = 0.0) -> int | None:
    if null_ratio and rng.random() < null_ratio:
        return None
    return ctx.first_id(User) + int(rng.random() * ctx.plan.counts["users"])


def _concept_rows(ctx: _Context) -> Iterator[tuple]:
    rng, pools = ctx.rng("concepts"), ctx.pools
    first_id = ctx.first_id(Concept)
    for offset in range(ctx.plan.counts["concepts"]):
        concept_id = first_id + offset
        created_epoch, created = ctx.timestamp(rng)
        updated = ctx.timestamp(rng, created_epoch)[1]
        yield (
            concept_id, f"C-{concept_id:07d}", rng.choice(pools.titles), rng.choice(pools.paragraphs),
            _user_ref(ctx, rng, 0.1), created, updated,
        )  # fmt: skip


def _dictionary_rows(ctx: _Context) -> Iterator[tuple]:
    rng, pools = ctx.rng("dictionaries"), ctx.pools
    first_id = ctx.first_id(Dictionary)
    for offset in range(ctx.plan.counts["dictionaries"]):
        dictionary_id = first_id + offset
        name = f"{rng.choice(pools.words).title()} {rng.choice(pools.words)} {dictionary_id}"
        yield dictionary_id, name, rng.choice(pools.sentences), _user_ref(ctx, rng, 0.1), ctx.timestamp(rng)[1]


def _entry_rows(ctx: _Context) -> Iterator[tuple]:
    rng, pools = ctx.rng("dictionary_entries"), ctx.pools
    first_id, first_dictionary = ctx.first_id(DictionaryEntry), ctx.first_id(Dictionary)
    dictionaries = ctx.plan.counts["dictionaries"]
    words, sentences = pools.words, pools.sentences
    for offset in range(ctx.plan.counts["dictionary_entries"]):
        # Round-robin over dictionaries; the position makes each key unique within its dictionary.
        position = offset // dictionaries
        value = rng.choice(words) if rng.random() < 0.7 else rng.choice(sentences)
        dictionary_id = first_dictionary + offset % dictionaries
        yield first_id + offset, dictionary_id, f"{rng.choice(words)}-{position}", value, position


def _entity_refs(ctx: _Context) -> list[tuple[str, int, int]]:
    """(entity_type, first id, count) of the seeded rows that files and audit logs point at."""
    counts = ctx.plan.counts
    return [
        (User._meta.label_lower, ctx.first_id(User), counts["users"]),
        (Concept._meta.label_lower, ctx.first_id(Concept), counts["concepts"]),
        (Concept._meta.label_lower, ctx.first_id(Concept), counts["concepts"]),  # concepts are the hot entity
        (Dictionary._meta.label_lower, ctx.first_id(Dictionary), counts["dictionaries"]),
        (DictionaryEntry._meta.label_lower, ctx.first_id(DictionaryEntry), counts["dictionary_entries"]),
    ]


def _file_rows(ctx: _Context) -> Iterator[tuple]:
    rng, pools = ctx.rng("stored_files"), ctx.pools
    first_id, refs = ctx.first_id(StoredFile), _entity_refs(ctx)
    for offset in range(ctx.plan.counts["stored_files"]):
        file_id = first_id + offset
        name, content_type = rng.choice(pools.files)
        entity_type, entity_first, entity_count = rng.choice(refs)
        created_epoch, created = ctx.timestamp(rng)
        folder = time.strftime("%Y/%m", time.gmtime(created_epoch))
        yield (
            file_id, name, f"files/{folder}/{file_id}-{name}", content_type, int(rng.lognormvariate(11, 2)),
            f"{rng.getrandbits(256):064x}", entity_type, entity_first + int(rng.random() * entity_count),
            _user_ref(ctx, rng, 0.05), created,
        )  # fmt: skip


_ACTION_WEIGHTS = {
    AuditLog.Action.UPDATE: 45,
    AuditLog.Action.CREATE: 20,
    AuditLog.Action.LOGIN: 15,
    AuditLog.Action.DELETE: 5,
    AuditLog.Action.EXPORT: 5,
    AuditLog.Action.IMPORT: 4,
    AuditLog.Action.BACKUP: 3,
    AuditLog.Action.RESTORE: 3,
}


def _audit_rows(ctx: _Context) -> Iterator[tuple]:
    rng, pools = ctx.rng("audit_logs"), ctx.pools
    first_id, refs = ctx.first_id(AuditLog), _entity_refs(ctx)
    user_ref = refs[0]
    actions = [str(action) for action, weight in _ACTION_WEIGHTS.items() for _ in range(weight)]
    login, empty_changes = str(AuditLog.Action.LOGIN), "{}"
    changes, ips = pools.changes, pools.ips
    start, span = EPOCH_END - SPAN_SECONDS, SPAN_SECONDS
    random_, choice, format_epoch = rng.random, rng.choice, ctx.format_epoch
    for offset in range(ctx.plan.counts["audit_logs"]):
        action = choice(actions)
        entity_type, entity_first, entity_count = user_ref if action == login else choice(refs)
        actor = None if random_() < 0.05 else user_ref[1] + int(random_() * user_ref[2])
        yield (
            first_id + offset, actor, action, entity_type, entity_first + int(random_() * entity_count),
            format_epoch(start + int(random_() * span)), empty_changes if action == login else choice(changes),
            choice(ips),
        )  # fmt: skip


def _create_roles(using: str, existing: set[str]) -> int:
    missing = [Role(name=name, description=description) for name, description in ROLES if name not in existing]
    Role.objects.using(using).bulk_create(missing)
    return len(missing)


# --- writers ---------------------------------------------------------------------------------------


_SEEDED_MODELS = (Role, User, UserRole, Concept, Dictionary, DictionaryEntry, StoredFile, AuditLog)


def _writer_for(connector: Connector) -> _Writer:
    return _CopyWriter(connector) if connector.supports_copy else _InsertWriter(connector)


class _Writer:
    method = ""
    ts_suffix = ""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.connection = connector.connection

    def columns(self, model: type[models.Model]) -> list[str]:
        return [self.connection.ops.quote_name(field.column) for field in model._meta.concrete_fields]

    def write(
        self, model: type[models.Model], rows: Iterator[tuple], *, total: int, label: str, progress
    ) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def suspend_indexes(self, rows_per_model: dict[type[models.Model], int]) -> None:
        """Hook for engines where building indexes after a bulk load beats maintaining them per row."""

    def restore_indexes(self) -> None:
        """Puts back whatever suspend_indexes took away."""

    def reset_sequences(self, seeded: list[type[models.Model]]) -> None:
        statements = self.connection.ops.sequence_reset_sql(no_style(), seeded)
        if statements:
            with self.connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)


def _chunks(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _CopyWriter(_Writer):
    """COPY … FROM STDIN in text format (Connector.copy_into), one bounded buffer per chunk.

    For tables that will hold more new rows than old ones, plain indexes and foreign keys are dropped
    before the load and rebuilt after it (Connector.index_suspension). All of it happens in
    seed_create's transaction, so a failure restores them; the tables are locked for the duration,
    which is fine for seed data.
    """

    method = "copy"
    ts_suffix = "+00"

    def __init__(self, connector: Connector) -> None:
        super().__init__(connector)
        self.indexes = connector.index_suspension()

    def tables_worth_rebuilding(self, rows_per_model: dict[type[models.Model], int]) -> list[str]:
        return self.indexes.tables_worth_rebuilding(rows_per_model)

    def suspend_indexes(self, rows_per_model: dict[type[models.Model], int]) -> None:
        self.indexes.suspend(rows_per_model)

    def restore_indexes(self) -> None:
        self.indexes.restore()

    def write(self, model, rows, *, total, label, progress) -> int:
        table = self.connection.ops.quote_name(model._meta.db_table)
        columns = self.columns(model)
        copy_text = self.connector.copy_text
        written = 0
        for chunk in _chunks(rows, CHUNK_ROWS):
            self.connector.copy_into(table, columns, "".join("\t".join(map(copy_text, row)) + "\n" for row in chunk))
            written += len(chunk)
            if progress:
                progress(label, written, total)
        return written


class _InsertWriter(_Writer):
    """Batched executemany INSERTs for engines without COPY (SQLite)."""

    method = "insert"

    def write(self, model, rows, *, total, label, progress) -> int:
        table = self.connection.ops.quote_name(model._meta.db_table)
        columns = self.columns(model)
        placeholders = ", ".join(["%s"] * len(columns))
        # Only quoted identifiers from model metadata are interpolated; values go through parameters.
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
        written = 0
        with self.connection.cursor() as cursor:
            for chunk in _chunks(rows, CHUNK_ROWS):
                cursor.executemany(statement, chunk)
                written += len(chunk)
                if progress:
                    progress(label, written, total)
        return written
