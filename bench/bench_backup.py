#!/usr/bin/env python
"""Backup/restore engine figures, each printed as a ratio against a baseline measured in the same run.

    eval "$(scripts/services env)" && .venv/bin/python bench/bench_backup.py            # 1M and 4M rows
    eval "$(scripts/services env)" && .venv/bin/python bench/bench_backup.py --quick    # ~20k rows, smoke

For each scale a database `bench_issue3_s<scale>` is created, migrated and filled by
`seed_data --scale <scale>` (scale 1000 is about a million rows). Figures (issue 3):
  backup  : `backup_advanced --compress zstd` vs the floor `pg_dump -Fc -Z0 > /dev/null`  (target <= 1.25;
            issue 18: <= 1.15), and with `--jobs 2` vs that single-process floor (issue 18: <= 1.0) and vs bare
            `pg_dump -Fd -j2 -Z0` into a folder
            vs default `pg_dump -Fc` (gzip) and vs django-dbbackup `dbbackup --compress`  (target >= 3x faster,
            output no larger)
  restore : `restore_db --backup-id --jobs 2` vs bare `pg_restore -j2` of the same archive   (target <= 1.25)
  memory  : peak RSS of our process (and its children) for backup and restore, every scale (target <= 150 MB)
Our commands run exactly as an operator runs them (`python manage.py …`, whole process wall time).
django-dbbackup runs from its own throwaway venv under /tmp (never in requirements.txt); it is created
on first use. The machine is shared and noisy, so each figure is the median of --rounds paired ratios:
every round runs the baseline and ours back to back (order alternating), and the spread is printed.
Databases are dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DBBACKUP_VENV = Path("/tmp/dbbackup-venv-issue3")
DBBACKUP_PINS = ["Django==5.2.19", "psycopg2-binary==2.9.13", "django-dbbackup==5.4.0"]

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


def timed(args, *, env=None, capture: bool = False) -> tuple[float, str, int]:
    """(wall seconds, stdout, peak RSS in KiB of the process and its children) of one command."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            args, env=env or pg_env(), stdout=out if capture else subprocess.DEVNULL, stderr=err, cwd=ROOT
        )
        _, status, usage = os.wait4(process.pid, 0)  # wait4: the child's own rusage (ru_maxrss)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            raise SystemExit(f"failed: {' '.join(map(str, args))}\n{err.read().decode()[-2000:]}")
        out.seek(0)
        return elapsed, out.read().decode(), usage.ru_maxrss


def paired_rounds(rounds: int, runs: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Runs every measurement once per round, rotating the order, so that each ratio compares runs made
    seconds apart under the same machine load."""
    names = list(runs)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(runs[name]())
    return seconds


def ratio(numerator: list[float], denominator: list[float]) -> str:
    """Median of the per-round ratios, with their range."""
    ratios = sorted(n / d for n, d in zip(numerator, denominator, strict=True))
    return f"{statistics.median(ratios):.2f} (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})"


def project_env(dbname: str, backup_dir: Path) -> dict[str, str]:
    env = {**os.environ, "DB_NAME": dbname, "BACKUP_DIR": str(backup_dir), "LOG_LEVEL": "WARNING"}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py picks the settings as it does for operators
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
    elapsed, _, _ = timed([str(python), "-m", "django", "dbbackup", "--compress", "--noinput", "-q"], env=env)
    size = sum(p.stat().st_size for p in location.iterdir())
    return elapsed, size


def measure_scale(dbname: str, args, workdir: Path, full: bool) -> dict:
    backup_dir = workdir / f"backups-{dbname}"
    shutil.rmtree(backup_dir, ignore_errors=True)
    backup_dir.mkdir()
    env = project_env(dbname, backup_dir)
    manage = [PYTHON, "manage.py"]
    facts: dict = {"backup_rss_kb": 0, "restore_rss_kb": 0, "in_process": []}

    def floor() -> float:
        return timed(["sh", "-c", f"pg_dump -Fc -Z0 -d {dbname} > /dev/null"])[0]

    def ours_backup() -> float:
        elapsed, _, rss = timed([*manage, "backup_advanced", "--compress", "zstd", "--quiet"], env=env)
        facts["backup_rss_kb"] = max(facts["backup_rss_kb"], rss)
        latest = json.loads(timed([*manage, "list_backups", "--json", "--limit", "1"], env=env, capture=True)[1])
        latest = latest["backups"][0]
        facts["in_process"].append(latest["duration_seconds"])
        facts["latest"] = latest
        return elapsed

    def ours_jobs2() -> float:
        elapsed, _, rss = timed([*manage, "backup_advanced", "--compress", "zstd", "--jobs", "2", "--quiet"], env=env)
        facts["backup_rss_kb"] = max(facts["backup_rss_kb"], rss)
        return elapsed

    def bare_directory_j2() -> float:
        folder = workdir / "bare-directory"
        shutil.rmtree(folder, ignore_errors=True)
        try:
            return timed(["pg_dump", "-Fd", "-j2", "-Z0", "-d", dbname, "-f", str(folder)])[0]
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def pg_dump_default() -> float:
        default_dump = workdir / "default.dump"
        elapsed = timed(["pg_dump", "-Fc", "-d", dbname, "-f", str(default_dump)])[0]
        facts["pg_dump_default_size"] = default_dump.stat().st_size
        default_dump.unlink()
        return elapsed

    def dbbackup() -> float:
        elapsed, facts["dbbackup_size"] = run_dbbackup(dbname, workdir)
        return elapsed

    backup_runs = {"floor": floor, "ours_backup": ours_backup}
    backup_runs |= {"ours_jobs2": ours_jobs2, "bare_fd_j2": bare_directory_j2}
    if full:
        backup_runs |= {"pg_dump_default": pg_dump_default, "dbbackup": dbbackup}
    seconds = paired_rounds(args.rounds, backup_runs)
    latest = facts["latest"]
    facts["ours_size"] = latest["size_bytes"]

    # The same archive, undecorated, for the bare pg_restore baseline.
    raw = workdir / "raw.dump"
    subprocess.run(["zstd", "-d", "-q", "-f", latest["location"], "-o", str(raw)], check=True)
    facts["raw_size"] = raw.stat().st_size

    def bare_restore() -> float:
        target = f"{dbname}_bare"
        psql(f'DROP DATABASE IF EXISTS "{target}"')
        psql(f'CREATE DATABASE "{target}" TEMPLATE template0')
        try:
            return timed(["pg_restore", "-j2", "--no-owner", "--exit-on-error", "-d", target, str(raw)])[0]
        finally:
            psql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')

    def ours_restore() -> float:
        command = ["restore_db", "--backup-id", str(latest["id"]), "--confirm", "--jobs", "2", "--no-safety-backup"]
        elapsed, _, rss = timed([*manage, *command, "--quiet"], env=env)
        facts["restore_rss_kb"] = max(facts["restore_rss_kb"], rss)
        kept = f"SELECT datname FROM pg_database WHERE datname LIKE '{dbname}\\_pre\\_restore\\_%'"  # noqa: S608
        for name in psql(kept).split():
            psql(f'DROP DATABASE "{name}" WITH (FORCE)')
        return elapsed

    seconds |= paired_rounds(args.rounds, {"bare_restore": bare_restore, "ours_restore": ours_restore})
    raw.unlink()
    shutil.rmtree(backup_dir, ignore_errors=True)
    return {"seconds": seconds, **facts}


def report(scale: float, rows: int, f: dict, full: bool) -> None:
    """Each figure as the median of per-round ratios; "in-process" is the backup's own recorded duration,
    without our Python/Django start-up."""
    mb = 1024 * 1024
    s = f["seconds"]
    dump_mb = f["raw_size"] / mb
    print(f"\nscale {scale:g}: {rows:,} rows, uncompressed custom dump {dump_mb:.0f} MB, {len(s['floor'])} rounds")
    print(f"  backup zstd / floor (pg_dump -Fc -Z0 > /dev/null)   = {ratio(s['ours_backup'], s['floor'])}  (<= 1.25)")
    print(f"    in-process (recorded duration) / floor            = {ratio(f['in_process'], s['floor'])}")
    print(f"  backup zstd --jobs 2 / floor                        = {ratio(s['ours_jobs2'], s['floor'])}  (<= 1.0)")
    print(f"    --jobs 2 / bare pg_dump -Fd -j2 -Z0 to a folder   = {ratio(s['ours_jobs2'], s['bare_fd_j2'])}")
    if full:
        for label, key in (("pg_dump -Fc (gzip)", "pg_dump_default"), ("dbbackup --compress", "dbbackup")):
            print(
                f"  {label + ' / backup zstd':<52}= {ratio(s[key], s['ours_backup'])}  (>= 3); "
                f"size ours/theirs = {f['ours_size'] / f[key + '_size']:.2f} (<= 1)"
            )
    restore = ratio(s["ours_restore"], s["bare_restore"])
    print(f"  restore --jobs 2 / bare pg_restore -j2              = {restore}  (<= 1.25)")
    print(
        f"  peak RSS of our process: backup {f['backup_rss_kb'] / 1024:.0f} MB, "
        f"restore {f['restore_rss_kb'] / 1024:.0f} MB (<= 150)"
    )
    print_medians(s)


def print_medians(seconds: dict[str, list[float]]) -> None:
    """The median seconds of every measured series, one line under the ratios (what they were taken from)."""
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print("  (median seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in medians.items()) + ")", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1000,4000", help="seed_data scales (1000 = ~1M rows).")
    parser.add_argument("--full-at", default="1000", help="Scales at which the gzip/dbbackup baselines also run.")
    parser.add_argument("--quick", action="store_true", help="Small smoke run: scale 20, all figures.")
    parser.add_argument("--rounds", type=int, default=5, help="Paired rounds per figure; the median ratio is kept.")
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
