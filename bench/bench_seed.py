"""Benchmark: seed_data's bulk path (COPY on PostgreSQL) against a naive bulk_create baseline.

    eval "$(scripts/services env)" && .venv/bin/python bench/bench_seed.py [--scale 100] [--baseline-scale 10] [--quick]

Both run in the same process on a throwaway database (created and dropped here), on the same mix
of tables (seed_plan's counts). The baseline is what one writes first: Faker called per row, model
instances, `bulk_create(batch_size=1000)`. Printed as rows/s for each and the ratio fast/baseline;
the baseline runs a smaller scale because it is slow, and rows/s is per-row so the two compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from faker import Faker  # noqa: E402

from multipult.core.models import (  # noqa: E402
    AuditLog,
    Concept,
    Dictionary,
    DictionaryEntry,
    Role,
    StoredFile,
    User,
)
from multipult.core.services.seeding import ROLES, seed_create, seed_plan  # noqa: E402


def naive_seed(*, scale: float, seed: int) -> int:
    """The obvious implementation: Faker per row, model instances, bulk_create. Returns rows created."""
    fake = Faker()
    fake.seed_instance(seed)
    counts = seed_plan(scale=scale).counts
    batch = 1000
    created = 0
    with transaction.atomic():
        roles = Role.objects.bulk_create([Role(name=name, description=text) for name, text in ROLES])
        users = User.objects.bulk_create(
            [
                User(
                    username=f"{fake.user_name()}{index}",
                    email=fake.email(),
                    first_name=fake.first_name(),
                    last_name=fake.last_name(),
                    phone=fake.phone_number()[:32],
                    password="!",  # noqa: S106 - an unusable password, as seed_data does
                    date_joined=fake.date_time_between("-2y", tzinfo=None).astimezone(),
                )
                for index in range(counts["users"])
            ],
            batch_size=batch,
        )
        links = [
            User.roles.through(user_id=user.id, role_id=role.id)
            for index, user in enumerate(users)
            for role in fake.random_elements(roles, length=2 if index % 2 == 0 else 1, unique=True)
        ]
        User.roles.through.objects.bulk_create(links, batch_size=batch)
        concepts = Concept.objects.bulk_create(
            [
                Concept(
                    code=f"N-{index}",
                    name=fake.catch_phrase(),
                    description=fake.paragraph(),
                    created_by=fake.random_element(users),
                )
                for index in range(counts["concepts"])
            ],
            batch_size=batch,
        )
        dictionaries = Dictionary.objects.bulk_create(
            [
                Dictionary(name=f"{fake.word()} {index}", description=fake.sentence())
                for index in range(counts["dictionaries"])
            ],
            batch_size=batch,
        )
        DictionaryEntry.objects.bulk_create(
            [
                DictionaryEntry(
                    dictionary=dictionaries[index % len(dictionaries)],
                    key=f"{fake.word()}-{index}",
                    value=fake.sentence(),
                    position=index,
                )
                for index in range(counts["dictionary_entries"])
            ],
            batch_size=batch,
        )
        StoredFile.objects.bulk_create(
            [
                StoredFile(
                    name=fake.file_name(),
                    storage_path=fake.file_path(),
                    content_type=fake.mime_type(),
                    size=fake.random_int(1, 10**7),
                    sha256=fake.sha256(),
                    entity_type="core.concept",
                    entity_id=fake.random_element(concepts).id,
                    uploaded_by=fake.random_element(users),
                )
                for _ in range(counts["stored_files"])
            ],
            batch_size=batch,
        )
        AuditLog.objects.bulk_create(
            [
                AuditLog(
                    actor=fake.random_element(users),
                    action=fake.random_element(AuditLog.Action.values),
                    entity_type="core.concept",
                    entity_id=fake.random_element(concepts).id,
                    timestamp=fake.date_time_between("-2y").astimezone(),
                    changes={fake.word(): [fake.word(), fake.word()]},
                    ip_address=fake.ipv4_public(),
                )
                for _ in range(counts["audit_logs"])
            ],
            batch_size=batch,
        )
        created = sum(counts.values())
    return created


def empty_database() -> None:
    call_command("flush", interactive=False, verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=100, help="seed_data scale (about 1,000 rows per unit).")
    parser.add_argument("--baseline-scale", type=float, default=10, help="Scale of the slower naive baseline.")
    parser.add_argument("--seed", type=int, default=1, help="Random seed for both.")
    parser.add_argument("--quick", action="store_true", help="Small sizes (scale 5, baseline 1) for a smoke run.")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.baseline_scale = 5, 1

    settings_dict = connection.settings_dict
    settings_dict.setdefault("TEST", {})["NAME"] = f"bench_seed_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        print(f"engine: {connection.vendor}; throwaway database {connection.settings_dict['NAME']}")
        started = time.perf_counter()
        baseline_rows = naive_seed(scale=args.baseline_scale, seed=args.seed)
        baseline_seconds = time.perf_counter() - started
        empty_database()

        result = seed_create(scale=args.scale, seed=args.seed)
        fast_rows, fast_seconds = result.total, result.seconds

        baseline_rate = baseline_rows / baseline_seconds
        fast_rate = fast_rows / fast_seconds
        line = "{:<44}: {:>10,} rows {:7.2f}s {:>10,.0f} rows/s"
        print(line.format("baseline naive bulk_create + Faker per row", baseline_rows, baseline_seconds, baseline_rate))
        print(line.format(f"seed_data {result.method}", fast_rows, fast_seconds, fast_rate))
        print(f"ratio seed_data/baseline rows/s: {fast_rate / baseline_rate:.1f}x")
        print(f"1,000,000 rows at this rate: {1_000_000 / fast_rate:.1f}s (baseline: {1_000_000 / baseline_rate:.0f}s)")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
