"""Test helpers shared across test packages (loaded as a pytest plugin from tests/conftest.py)."""
