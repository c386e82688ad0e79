#!/usr/bin/env python
"""Backup/restore engine figures, each printed as a ratio against a baseline measured in the same run.

    eval "$(scripts/services env)" && .venv/bin/python bench/bench_backup.py            # 1M and 4M rows
    eval "$(scripts/services env)" && .venv/bin/python bench/bench_backup.py --quick    # ~20k rows, smoke

For each scale a database `bench_issue3_s<scale>` is created, migrated and filled by
`seed_data --scale <scale>` (scale 1000 is about a million rows). Figures (issue 3):
  backup  : `backup_advanced --compress zstd` vs the floor `pg_dump -Fc -Z0 > /dev/null`  (target <= 1.25)
            vs default `pg_dump -Fc` (gzip) and vs django-dbbackup `dbbackup --compress`  (target >= 3x faster,
            output no larger)
  restore : `restore_db --backup-id --jobs 2` vs bare `pg_restore -j2` of the same archive   (target <= 1.25)
  memory  : peak RSS of our Python process for backup and restore, at every scale          (target <= 150 MB)
django-dbbackup runs from its own throwaway venv under /tmp (never in requirements.txt); it is created
on first use. Wall times are the best of --repeat runs. Databases are dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DBBACKUP_VENV = Path("/tmp/dbbackup-venv-issue3")
DBBACKUP_PINS = ["Django==5.2.19", "psycopg2-binary==2.9.13", "django-dbbackup==5.4.0"]

RUNNER = """
import json, resource, sys, time, django
django.setup()
from io import StringIO
from django.core.management import call_command
from dbops.models import BackupRecord
out = StringIO()
started = time.perf_counter()
call_command(*sys.argv[1:], stdout=out)
seconds = time.perf_counter() - started
latest = BackupRecord.objects.filter(kind="full").order_by("-pk").first()
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "seconds": seconds,
                  "backup_id": latest.pk if latest else None,
                  "size": latest.size_bytes if latest else None,
                  "location": latest.location if latest else None}))
"""

DBBACKUP_SETTINGS = """
SECRET_KEY = "bench-only"
INSTALLED_APPS = ["dbbackup"]
USE_TZ = True
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", "HOST": {host!r}, "PORT": {port!r},
    "NAME": {name!r}, "USER": {user!r}, "PASSWORD": {password!r}}}}}
STORAGES = {{"default": {{"BACKEND": "django.core.files.storage.FileSystemStorage"}},
    "dbbackup": {{"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {{"location": {location!r}}}}}}}
"""


def pg_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PGHOST"], env["PGPORT"] = os.environ["DB_HOST"], os.environ.get("DB_PORT", "5432")
    env["PGUSER"], env["PGPASSWORD"] = os.environ.get("DB_USER", "postgres"), os.environ.get("DB_PASSWORD", "")
    return env


def psql(sql: str, dbname: str = "postgres") -> str:
    return subprocess.run(
        ["psql", "-X", "-q", "-At", "-d", dbname, "-c", sql], env=pg_env(), check=True, capture_output=True, text=True
    ).stdout.strip()


def timed(args, *, env=None, stdout=subprocess.DEVNULL) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(args, env=env or pg_env(), stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, args))}\n{result.stderr.decode()[-2000:]}")
    return elapsed, result.stdout.decode() if isinstance(result.stdout, bytes) else ""


def best(repeat: int, fn):
    results = [fn() for _ in range(repeat)]
    return min(results, key=lambda item: item[0])


def project_env(dbname: str, backup_dir: Path) -> dict[str, str]:
    env = {**os.environ, "DB_NAME": dbname, "BACKUP_DIR": str(backup_dir), "LOG_LEVEL": "WARNING"}
    env["DJANGO_SETTINGS_MODULE"] = "multipult.settings"
    for name in (
        "S3_BACKUP_BUCKET",
        "S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "BACKUP_ENCRYPTION_KEY",
    ):
        env.pop(name, None)
    return env


def prepare(dbname: str, scale: float, reuse: bool) -> int:
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'") == "1"  # noqa: S608 (our own name)
    if not (exists and reuse):
        psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        psql(f'CREATE DATABASE "{dbname}"')
        env = project_env(dbname, Path(tempfile.gettempdir()))
        subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], env=env, cwd=ROOT, check=True)
        started = time.perf_counter()
        subprocess.run(
            [PYTHON, "manage.py", "seed_data", "--scale", str(scale), "--quiet"], env=env, cwd=ROOT, check=True
        )
        print(f"  seeded scale {scale:g} in {time.perf_counter() - started:.0f}s", flush=True)
    psql("VACUUM ANALYZE", dbname)
    rows = psql("SELECT sum(n_live_tup) FROM pg_stat_user_tables", dbname)
    return int(float(rows or 0))


def ensure_dbbackup_venv() -> Path:
    python = DBBACKUP_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([PYTHON, "-m", "venv", str(DBBACKUP_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DBBACKUP_PINS], check=True)
    return python


def run_dbbackup(dbname: str, workdir: Path) -> tuple[float, int]:
    python = ensure_dbbackup_venv()
    location = workdir / "dbbackup"
    shutil.rmtree(location, ignore_errors=True)
    location.mkdir()
    settings_dir = workdir / "dbbackup_settings"
    settings_dir.mkdir(exist_ok=True)
    (settings_dir / "bench_dbbackup_settings.py").write_text(
        DBBACKUP_SETTINGS.format(
            host=os.environ["DB_HOST"],
            port=os.environ.get("DB_PORT", "5432"),
            name=dbname,
            user=os.environ.get("DB_USER", "postgres"),
            password=os.environ.get("DB_PASSWORD", ""),
            location=str(location),
        )
    )
    env = {**pg_env(), "DJANGO_SETTINGS_MODULE": "bench_dbbackup_settings", "PYTHONPATH": str(settings_dir)}
    elapsed, _ = timed([str(python), "-m", "django", "dbbackup", "--compress", "--noinput", "-q"], env=env)
    size = sum(p.stat().st_size for p in location.iterdir())
    return elapsed, size


def measure_scale(dbname: str, args, workdir: Path, full: bool) -> dict:
    figures: dict = {}
    backup_dir = workdir / f"backups-{dbname}"
    shutil.rmtree(backup_dir, ignore_errors=True)
    backup_dir.mkdir()
    env = project_env(dbname, backup_dir)
    conn = ["-d", dbname]

    figures["floor"] = best(args.repeat, lambda: timed(["sh", "-c", f"pg_dump -Fc -Z0 -d {dbname} > /dev/null"]))[0]

    def ours_backup():
        elapsed, out = timed(
            [PYTHON, "-c", RUNNER, "backup_advanced", "--compress", "zstd", "--quiet"], env=env, stdout=subprocess.PIPE
        )
        return elapsed, json.loads(out.strip().splitlines()[-1])

    figures["ours_backup"], info = best(args.repeat, ours_backup)
    figures["ours_size"], figures["backup_rss_mb"] = info["size"], info["maxrss_kb"] / 1024
    figures["ours_backup_in_process"] = info["seconds"]

    # The same archive, undecorated, for the bare pg_restore baseline.
    raw = workdir / "raw.dump"
    subprocess.run(["zstd", "-d", "-q", "-f", info["location"], "-o", str(raw)], check=True)
    figures["raw_size"] = raw.stat().st_size

    if full:
        default_dump = workdir / "default.dump"
        figures["pg_dump_default"] = best(
            args.repeat, lambda: timed(["pg_dump", "-Fc", *conn, "-f", str(default_dump)])
        )[0]
        figures["pg_dump_default_size"] = default_dump.stat().st_size
        default_dump.unlink()
        figures["dbbackup"], figures["dbbackup_size"] = best(args.repeat, lambda: run_dbbackup(dbname, workdir))

    def bare_restore():
        target = f"{dbname}_bare"
        psql(f'DROP DATABASE IF EXISTS "{target}"')
        psql(f'CREATE DATABASE "{target}" TEMPLATE template0')
        try:
            return timed(["pg_restore", "-j2", "--no-owner", "--exit-on-error", "-d", target, str(raw)])
        finally:
            psql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')

    figures["bare_restore"] = best(args.repeat, bare_restore)[0]

    def ours_restore():
        elapsed, out = timed(
            [
                PYTHON,
                "-c",
                RUNNER,
                "restore_db",
                "--backup-id",
                str(info["backup_id"]),
                "--confirm",
                "--jobs",
                "2",
                "--no-safety-backup",
                "--quiet",
            ],
            env=env,
            stdout=subprocess.PIPE,
        )
        kept = f"SELECT datname FROM pg_database WHERE datname LIKE '{dbname}\\_pre\\_restore\\_%'"  # noqa: S608
        for name in psql(kept).split():
            psql(f'DROP DATABASE "{name}" WITH (FORCE)')
        return elapsed, json.loads(out.strip().splitlines()[-1])

    figures["ours_restore"], restore_info = best(args.repeat, ours_restore)
    figures["restore_rss_mb"] = restore_info["maxrss_kb"] / 1024
    figures["ours_restore_in_process"] = restore_info["seconds"]
    raw.unlink()
    shutil.rmtree(backup_dir, ignore_errors=True)
    return figures


def report(scale: float, rows: int, f: dict, full: bool) -> None:
    """Each figure as a ratio; "in-process" leaves out our ~1-3 s of Python/Django start-up."""
    mb = 1024 * 1024
    print(f"\nscale {scale:g}: {rows:,} rows, uncompressed custom dump {f['raw_size'] / mb:.0f} MB")
    print(
        f"  backup zstd / floor (pg_dump -Fc -Z0 > /dev/null)   = {f['ours_backup'] / f['floor']:.2f}  (<= 1.25); "
        f"in-process {f['ours_backup_in_process'] / f['floor']:.2f}"
    )
    if full:
        for label, key in (("pg_dump -Fc (gzip)", "pg_dump_default"), ("dbbackup --compress", "dbbackup")):
            print(
                f"  {label + ' / backup zstd':<52}= {f[key] / f['ours_backup']:.2f}  (>= 3); "
                f"in-process {f[key] / f['ours_backup_in_process']:.2f}; "
                f"size ours/theirs = {f['ours_size'] / f[key + '_size']:.2f} (<= 1)"
            )
    print(
        f"  restore --jobs 2 / bare pg_restore -j2              = {f['ours_restore'] / f['bare_restore']:.2f}  "
        f"(<= 1.25); in-process {f['ours_restore_in_process'] / f['bare_restore']:.2f}"
    )
    print(
        f"  peak RSS of our process: backup {f['backup_rss_mb']:.0f} MB, restore {f['restore_rss_mb']:.0f} MB (<= 150)"
    )
    print(
        "  (seconds: "
        + ", ".join(f"{k} {v:.2f}" for k, v in f.items() if isinstance(v, float) and not k.endswith("_mb"))
        + ")",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1000,4000", help="seed_data scales (1000 = ~1M rows).")
    parser.add_argument("--full-at", default="1000", help="Scales at which the gzip/dbbackup baselines also run.")
    parser.add_argument("--quick", action="store_true", help="Small smoke run: scale 20, all figures.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per measurement; the best is kept.")
    parser.add_argument("--reuse", action="store_true", help="Reuse an existing seeded bench database.")
    parser.add_argument("--keep", action="store_true", help="Keep the bench databases afterwards.")
    parser.add_argument(
        "--database",
        help="Measure this existing, already seeded database (one scale, with --scales giving its scale) "
        "instead of creating bench_issue3_s<scale>; it is never dropped.",
    )
    args = parser.parse_args()
    if "DB_HOST" not in os.environ:
        print('Needs the PostgreSQL server: eval "$(scripts/services env)" first.', file=sys.stderr)
        return 2
    scales = [20.0] if args.quick else [float(s) for s in args.scales.split(",")]
    if args.database and len(scales) != 1:
        parser.error("--database measures one database: give its scale alone with --scales.")
    full_at = set(scales) if args.quick else {float(s) for s in args.full_at.split(",")}
    with tempfile.TemporaryDirectory(prefix="bench-issue3-") as folder:
        for scale in scales:
            dbname = args.database or f"bench_issue3_s{scale:g}".replace(".", "_")
            rows = prepare(dbname, scale, args.reuse or bool(args.database))
            figures = measure_scale(dbname, args, Path(folder), full=scale in full_at)
            report(scale, rows, figures, full=scale in full_at)
            if not (args.keep or args.database):
                psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
