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
