"""dbops models, one module per area (backups, snapshots, retention, profiling), re-exported here."""
