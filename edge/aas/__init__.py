"""The station and its inspections as an Asset Administration Shell (export and live read-only API)."""
