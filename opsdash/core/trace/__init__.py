"""Credential trace: find the target's secret values (and previous ones, by fingerprint) in files,
in a git repository's every object, and in what the live site serves."""
