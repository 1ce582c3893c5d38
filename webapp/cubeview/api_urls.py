"""Included by webapp/api_urls.py under `cubeview/`, inside the `api:` namespace."""

from django.urls import path

from . import api

urlpatterns = [
    path("runs/<int:run_id>/cube/", api.cube_view, name="cubeview-cube"),
    path("runs/<int:run_id>/projector/", api.projector_view, name="cubeview-projector"),
]
