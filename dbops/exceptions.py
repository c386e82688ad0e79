"""One exception family for the dbops layer; commands and views turn these into CommandError or
HTTP/GraphQL errors at the outer edge only."""


class DbopsError(Exception):
    """Base of every error the dbops services raise on purpose (bad input, failed operation)."""


class ConfigurationError(DbopsError):
    """A setting needed by the operation is missing or unusable."""


class SeedError(DbopsError):
    """seed_data was asked for something it cannot create (bad scale, missing tables)."""


class UserAdminError(DbopsError):
    """create_user / assign_role got an unknown user or role, a taken name or an unusable password."""


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
