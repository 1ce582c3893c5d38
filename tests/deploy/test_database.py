"""The suite runs on the database DATABASE_URL names (scripts/with_postgres.sh sets PostgreSQL)."""

import os

import pytest
from django.db import connection


@pytest.mark.django_db
def test_the_suite_runs_on_the_database_of_database_url():
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    assert connection.vendor == expected
    with connection.cursor() as cursor:  # and it answers
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
