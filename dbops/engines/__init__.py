from dbops.engines.base import (
    CONNECTOR_MAPPING,
    Connector,
    DumpResult,
    LeftoversRecovery,
    RestoreOutcome,
    database_probe,
    get_connector,
)

__all__ = [
    "CONNECTOR_MAPPING",
    "Connector",
    "DumpResult",
    "LeftoversRecovery",
    "RestoreOutcome",
    "database_probe",
    "get_connector",
]
