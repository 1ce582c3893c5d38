from django.urls import path

from webapp.pages import views

app_name = "pages"

urlpatterns = [
    path("", views.runs_list, name="runs"),
    path("runs/new/", views.new_run, name="new_run"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("datasets/", views.datasets_list, name="datasets"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset_detail"),
]
