"""The PITR drill on a real throwaway cluster: the newest base backup and the archived WAL replayed in a
scratch server to a moment after it; the drill row records the recovery time (RTO) and the gap between
the target and the last replayed commit (RPO). A target before every base backup fails, recorded."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from dbops.exceptions import PitrError
from dbops.models import PitrDrill
from dbops.services.pitr.drill import pitr_drill_run
from dbops.services.pitr.recovery import pitr_base_backup_create
from tests.dbops.services.pitr.cluster import (  # noqa: F401  (pitr_clusters: fixture)
    database_alias,
    pitr_clusters,
    switch_wal_and_wait,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_a_drill_replays_to_the_target_and_records_rto_and_rpo(pitr_clusters, monkeypatch, settings):  # noqa: F811
    source = pitr_clusters.archiving_source()
    source.query("CREATE TABLE item (id int PRIMARY KEY, written_at timestamptz NOT NULL)")
    with database_alias("pitr_source", source.port) as alias:
        record = pitr_base_backup_create(using=alias)
    source.query("INSERT INTO item SELECT i, clock_timestamp() FROM generate_series(1, 10) i")
    last_before = source.query("SELECT max(written_at) FROM item")[0][0]
    time.sleep(1.0)
    target = source.query("SELECT clock_timestamp()")[0][0]
    time.sleep(0.5)
    source.query("INSERT INTO item SELECT i, clock_timestamp() FROM generate_series(11, 20) i")
    switch_wal_and_wait(source)
    pitr_clusters.lend_environment(monkeypatch, settings)

    # A target before every base backup: refused, and the drill is recorded failed
    with pytest.raises(PitrError, match="No PITR base backup finished before"):
        pitr_drill_run(target_age=timedelta(days=1))
    failed = PitrDrill.objects.get()
    assert failed.status == "failed" and "No PITR base backup finished before" in failed.error

    drill = pitr_drill_run(target_age=timezone.now() - target)
    assert (drill.status, drill.base_backup) == ("succeeded", record) and drill.error == ""
    assert drill.recovery_seconds > 0 and drill.wal_restored_from_archive >= 1
    # RPO: the target minus the last commit replayed, which is the commit of the first ten rows
    assert abs(drill.rpo_seconds - (drill.target_time - last_before).total_seconds()) < 0.5
    assert PitrDrill.objects.filter(status="succeeded").get() == drill


def test_without_base_backups_there_is_nothing_to_drill(backup_dir):
    assert pitr_drill_run() is None and not PitrDrill.objects.exists()
