"""Local SQLite history (sqlite-utils). Importable without the UI."""
