"""Tests of the analyst layer (dbt models)."""
