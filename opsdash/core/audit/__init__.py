"""The tamper-evident audit log (log.py) and the tail engine that reads it (tail.py)."""
