"""One exception family for the dbops layer; commands and views turn these into CommandError or
HTTP/GraphQL errors at the outer edge only."""


class DbopsError(Exception):
    """Base of every error the dbops services raise on purpose (bad input, failed operation).

    The message speaks in the service's own terms, never in command-line flags; `parameter` names the
    service keyword it is about (e.g. "tag"), so a command can prefix its own option for it (--tag)."""

    def __init__(self, *args, parameter: str | None = None) -> None:
        super().__init__(*args)
        self.parameter = parameter


class ConfigurationError(DbopsError):
    """A setting needed by the operation is missing or unusable."""


class RetentionError(DbopsError):
    """A retention policy cannot be applied (unknown policy, bad rules, deletions that failed)."""


class NoRetentionPolicy(RetentionError):
    """A retention run was asked for every enabled policy, and none is enabled."""


class SeedError(DbopsError):
    """seed_data was asked for something it cannot create (bad scale, missing tables)."""


class UserAdminError(DbopsError):
    """create_user / assign_role got an unknown user or role, a taken name or an unusable password."""


class DatabaseUnavailable(DbopsError):
    """The database server cannot be reached (or refuses the connection)."""


class DatabaseOperationError(DbopsError):
    """A statement on a whole database (CREATE/DROP/ALTER DATABASE) failed; the message has the server's words."""


class FeatureUnavailable(DbopsError):
    """The database engine (or this server) cannot do what was asked: no statistics extension, no plans."""


class BulkLoadRejected(DbopsError):
    """The database refused a value of a bulk load; `line` (1-based, of that load) and `column` say where."""

    def __init__(self, message: str, *, line: int | None = None, column: str | None = None) -> None:
        super().__init__(message)
        self.line, self.column = line, column


class BackupError(DbopsError):
    """A backup could not be taken (dump tool missing or failing, storage not writable...)."""


class OutputExists(BackupError):
    """The file a backup would be written to (or its checksum file) exists, and replacing it was not asked for."""


class BackupNotFound(DbopsError):
    """No backup with the given id (or no backup at all for --latest)."""


class BackupLockedError(BackupError):
    """Another backup or restore of the same database is running."""


class ArtifactWriteError(BackupError):
    """A local file of a backup (artifact, manifest, checksum sidecar) could not be written: disk full,
    folder not writable, I/O error. Nothing incomplete was left behind."""


class UploadError(BackupError):
    """The artifact is safe locally but could not be copied to S3 (`backup_record` says which)."""

    backup_record = None


class RestoreError(DbopsError):
    """A restore was refused or failed; the message says what state the database is in."""


class NotABackupError(RestoreError):
    """The given file is not a backup this project can read."""


class ChecksumMismatch(RestoreError):
    """The artifact in storage does not match the SHA-256 recorded at backup time."""


class ChecksumUnavailable(RestoreError):
    """A backup file has no checksum beside it (sidecar or manifest), so it cannot be verified."""


class EncryptionError(DbopsError):
    """An encrypted backup cannot be written or read (missing or wrong key, damaged ciphertext)."""


class KeyUnavailable(EncryptionError):
    """The key a backup was encrypted with is not in the key ring: the backup is fine, this
    installation just cannot decrypt it (not a failure of the backup)."""


class CatalogSyncRefused(DbopsError):
    """A catalog sync would make every backup look missing (storage unmounted, empty or unreachable):
    refused, nothing changed."""


class QueueUnavailable(DbopsError):
    """A job could not be handed to the task queue (broker unreachable); nothing was started."""


class VerificationError(DbopsError):
    """verify_backup could not run (artifact missing, engine mismatch)."""


class DataMigrationError(DbopsError):
    """export_data / import_data / snapshots: an operation that cannot be done as asked."""


class UnknownEntityError(DataMigrationError):
    """An entity name that the data migration tools do not know; the message lists the valid ones."""


class TransformationFailed(DbopsError):
    """A registered transformation raised, or returned something other than a record: the operator's code
    failed, not the input, so the run is kept as failed with this message; nothing was written."""


class ExportWriteError(DbopsError):
    """The export could not be written (disk full, folder gone or read-only): the run is kept as failed,
    whatever was at the target is untouched and no partial file is left."""


class ImportFormatError(DataMigrationError):
    """The input file cannot be read in the given format (malformed, truncated, wrong encoding)."""


class ImportValidationError(DataMigrationError):
    """Records failed validation; `problems` holds every (entity, record number, field, message)."""

    headline = "invalid record(s)"

    def __init__(self, problems, total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = total if total is not None else len(self.problems)
        shown = "\n".join(f"  {problem}" for problem in self.problems[:25])
        more = f"\n  … and {self.total - 25} more" if self.total > 25 else ""
        super().__init__(f"{self.total} {self.headline}; nothing was imported:\n{shown}{more}")


class PrivilegedImportRefused(ImportValidationError):
    """Records would grant privileges (superuser or staff flags, group, permission or role memberships)
    and importing privileges was not allowed; nothing was imported."""

    headline = "record(s) refused (grant privileges or are invalid)"


class AnonymizationRuleMissing(DataMigrationError):
    """--anonymize was asked for entities with personal-looking columns that have no rule."""


class AnonymizationFailed(DataMigrationError):
    """A masking rule could not apply to a stored value (say the text of a date rule is no date); the
    message names entity, field and rule but never the value; nothing was written."""


class PersonalDataFound(DataMigrationError):
    """The scanner of an anonymized export found personal data in a value the rules keep; nothing was written."""


class KAnonymityTooLow(DataMigrationError):
    """A group of records shares its quasi-identifiers with fewer others than asked; nothing was written."""


class SnapshotError(DataMigrationError):
    """A snapshot does not exist, or a rollback could not restore it exactly."""


class SnapshotLaterChanges(SnapshotError):
    """Rows were written to a snapshot's tables after its import: a rollback would discard them."""


class AnalyzerError(DbopsError):
    """analyze_query got a statement it cannot explain (empty, several, not a query, rejected by the server)."""


class PitrError(DbopsError):
    """Point-in-time recovery cannot proceed: bad settings, no usable base backup, bad target, failed tool."""


class WalArchiveConflict(PitrError):
    """A WAL file with the same name but different content is already archived: never overwrite it."""


class WalNotFound(PitrError):
    """The requested WAL file is not in the archive (normal at the end of recovery)."""


class WalChecksumMismatch(PitrError):
    """An archived WAL file does not match its recorded checksum."""
