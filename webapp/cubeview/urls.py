from django.urls import path

from . import views

app_name = "cubeview"

urlpatterns = [
    path("runs/<int:run_id>/cube/", views.cube_page, name="cube"),
    path("runs/<int:run_id>/projector/", views.projector_page, name="projector"),
]
