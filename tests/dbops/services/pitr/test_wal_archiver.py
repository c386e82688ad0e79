"""The asynchronous WAL archiver on a real throwaway cluster whose archive_command is the spool script:
the archiver pushes every ready segment ahead of the server (in parallel), the server recycles only
acknowledged segments, and an archiver killed (SIGKILL) in the middle of storing a segment loses none."""

from __future__ import annotations

import signal
import threading

import pytest

from dbops import walspool
from dbops.engines.postgresql.server import pitr_async_archive_command, server_wal_path, server_wal_ready
from dbops.services.pitr.wal_archive import cluster_id_from_data_dir, wal_archived_names, wal_restore
from dbops.services.pitr.wal_archiver import wal_archiver_run
from tests.commands import command_error
from tests.dbops.commandline import start_manage
from tests.dbops.services.pitr.cluster import (  # noqa: F401  (pitr_clusters: fixture)
    ClusterFactory,
    pitr_clusters,
    wait_archived,
)
from tests.faults import observe

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def spooled_source(factory: ClusterFactory):
    spool = factory.root / "spool"
    spool.mkdir(mode=0o755)
    command = pitr_async_archive_command(spool=spool, python=factory.python)
    source = factory.archiving_source(archive_command=command)
    source.query("CREATE TABLE item (id serial PRIMARY KEY, payload text NOT NULL)")
    return source, spool


def segments_written(source, count: int) -> list[str]:
    """`count` completed segments with rows in each (the server cannot archive them: nobody acknowledges)."""
    names = []
    for _ in range(count):
        source.query("INSERT INTO item (payload) SELECT md5(g::text) FROM generate_series(1, 2000) g")
        names.append(source.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
    return names


def archived_count(source) -> int:
    return source.query("SELECT archived_count FROM pg_stat_archiver")[0][0]


def test_the_archiver_pushes_ahead_and_the_server_recycles_only_what_it_acknowledged(pitr_clusters, tmp_path):  # noqa: F811
    source, spool = spooled_source(pitr_clusters)
    # Given six completed segments and no archiver: the server keeps them all, archives none
    names = segments_written(source, 6)
    assert set(names) <= set(server_wal_ready(source.data_dir)) and archived_count(source) == 0
    originals = {name: server_wal_path(source.data_dir, name).read_bytes() for name in names}
    # When the archiver runs (three at once)...
    stopping = threading.Event()
    runs = []
    archiver = threading.Thread(
        target=lambda: runs.append(
            wal_archiver_run(data_dir=source.data_dir, spool=spool, workers=3, should_stop=stopping.is_set)
        )
    )
    archiver.start()
    try:
        wait_archived(source, names[-1])
    finally:
        stopping.set()
        archiver.join(timeout=60)
    # ...then each segment is in the archive, identical, and the server counted each archived once
    cluster_id = cluster_id_from_data_dir(source.data_dir)
    assert set(names) <= set(wal_archived_names(cluster_id=cluster_id))
    for name, original in originals.items():
        wal_restore(name=name, destination=tmp_path / name, cluster_id=cluster_id)
        assert (tmp_path / name).read_bytes() == original
    assert runs[0].failures == {} and runs[0].archived >= 6
    assert archived_count(source) >= 6


def test_a_killed_archiver_loses_no_segment(faulty_s3, settings, tmp_path):
    factory = ClusterFactory()
    try:
        source, spool = spooled_source(factory)
        names = segments_written(source, 4)
        stuck = names[2]
        originals = {name: server_wal_path(source.data_dir, name).read_bytes() for name in names}
        # Given the archiver's upload of the third segment hangs in S3...
        faulty_s3.fail(
            lambda method, path, query: method == "PUT" and path.endswith(f"/{stuck}.zst"), "hang", seconds=60
        )
        env = {
            "PITR_STORAGE": "s3",
            "S3_BACKUP_BUCKET": faulty_s3.bucket,
            "S3_ENDPOINT_URL": faulty_s3.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "LOG_LEVEL": "WARNING",
        }
        child = start_manage("wal_archiver", "--data-dir", str(source.data_dir), "--spool", str(spool), env=env)
        observe.wait_for(lambda: faulty_s3.count(lambda m, p, q: p.endswith(f"/{stuck}.zst")), what="the stuck upload")
        # ...when it is killed in the middle of that segment
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        # then that segment is not acknowledged: the server still holds it, ready, and has not archived it
        assert not (spool / f"{stuck}.ok").exists()
        assert stuck in server_wal_ready(source.data_dir) and server_wal_path(source.data_dir, stuck).exists()
        assert source.query("SELECT last_archived_wal FROM pg_stat_archiver")[0][0] in (None, names[0], names[1])
        # and the next run stores it (the half-stored copy had no manifest), so the server archives them all
        faulty_s3.heal()
        settings.PITR_STORAGE = "s3"
        run = wal_archiver_run(data_dir=source.data_dir, spool=spool, once=True)
        assert run.failures == {}
        wait_archived(source, names[-1])
        cluster_id = cluster_id_from_data_dir(source.data_dir)
        for name, original in originals.items():
            wal_restore(name=name, destination=tmp_path / name, cluster_id=cluster_id)
            assert (tmp_path / name).read_bytes() == original
    finally:
        factory.close()


def test_archive_command_without_an_acknowledgement_fails_and_says_why(tmp_path, capsys):
    spool = tmp_path / "spool"
    spool.mkdir()
    name = "000000010000000000000007"
    assert walspool.main([str(spool), name, "0.05"]) == 1
    assert "not acknowledged by the archiver within 0.05s: is the wal_archiver running?" in capsys.readouterr().err
    (spool / f"{name}.error").write_text("S3 bucket gone\n")
    assert walspool.main([str(spool), name, "0.05"]) == 1
    assert capsys.readouterr().err.strip().endswith(": S3 bucket gone")
    (spool / f"{name}.ok").write_text("sha\n")
    assert walspool.main([str(spool), name, "0.05"]) == 0
    assert walspool.main([str(tmp_path / "nowhere"), name]) == 1
    assert "The WAL spool" in capsys.readouterr().err


def test_the_archiver_refuses_a_missing_spool_or_data_directory(tmp_path, backup_dir):
    assert (
        command_error(
            "wal_archiver",
            "--data-dir",
            str(tmp_path),
            "--spool",
            str(tmp_path / "none"),
            "--cluster-id",
            "1",
            "--once",
        )
        == f"--spool: The WAL spool {tmp_path / 'none'} does not exist (create it, writable by the server)."
    )
    message = command_error("wal_archiver", "--data-dir", str(tmp_path), "--spool", str(tmp_path), "--cluster-id", "1")
    assert message == (
        f"--data-dir: {tmp_path}/pg_wal/archive_status does not exist: is {tmp_path} a PostgreSQL data directory?"
    )
