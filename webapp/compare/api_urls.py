"""Included by webapp/api_urls.py under `compare/`, inside the `api:` namespace."""

from django.urls import path

from . import api

urlpatterns = [
    path("", api.compare_view, name="compare"),
    path("runs/", api.runs_table_view, name="compare-runs"),
    path("table.csv", api.table_csv_view, name="compare-table-csv"),
    path("curves.csv", api.curves_csv_view, name="compare-curves-csv"),
]
