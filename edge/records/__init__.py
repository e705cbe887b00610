"""Inspection records: every inspection in SQLite (WAL), its image on disk under a quota.

Import from the submodules (config, model, query, store, recovery); this package imports nothing.
"""
