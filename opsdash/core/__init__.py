"""The headless core: pure domain logic, importable without Textual or rich."""
