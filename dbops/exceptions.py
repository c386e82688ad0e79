"""One exception family for the dbops layer; commands and views turn these into CommandError or
HTTP/GraphQL errors at the outer edge only."""


class DbopsError(Exception):
    """Base of every error the dbops services raise on purpose (bad input, failed operation)."""


class ConfigurationError(DbopsError):
    """A setting needed by the operation is missing or unusable."""


class RetentionError(DbopsError):
    """A retention policy cannot be applied (unknown policy, bad rules, deletions that failed)."""
