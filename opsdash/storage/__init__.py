"""Local SQLite history: `history.History` owns the one connection, a repository per table family
(runs, checks, alerts, sessions, webhooks, anchors) reads and writes through it. Importable
without the UI."""
