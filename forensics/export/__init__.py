"""Exports to other tools' formats: pure functions from the report models to documents."""
