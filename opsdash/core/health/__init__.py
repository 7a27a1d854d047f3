"""Live health checks: check kinds, the condition language, error classes and the async runner."""
