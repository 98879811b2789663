"""A conveyor backend on one SQLite file: the worked example of the plugin-author guide."""

from conveyor_sqlite_example.backend import SqliteBackend, SqliteConfig

__all__ = ["SqliteBackend", "SqliteConfig"]
