import pytest


@pytest.fixture(autouse=True)
def _storage(isolated_storage):
    """Every web test writes its files under its own tmp dir, never under var/."""
