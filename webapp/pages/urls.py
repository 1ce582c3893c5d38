from django.urls import path

from webapp.accounts import views as account_views
from webapp.pages import views

app_name = "pages"

urlpatterns = [
    path("", views.runs_list, name="runs"),
    path("runs/new/", views.new_run, name="new_run"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/notes/", views.run_notes, name="run_notes"),
    path("runs/<int:run_id>/baseline/", views.run_baseline, name="run_baseline"),
    path("runs/<int:run_id>/rerun/", views.run_rerun, name="run_rerun"),
    path("runs/<int:run_id>/delete/", views.run_delete, name="run_delete"),
    path("datasets/", views.datasets_list, name="datasets"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<int:dataset_id>/delete/", views.dataset_delete, name="dataset_delete"),
    path("account/tokens/", account_views.tokens, name="tokens"),
]
