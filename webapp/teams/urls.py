"""Browser pages: /teams/ (list + create), /teams/<id>/ (members; owners add, change, remove)."""

from django.urls import path

from . import views

app_name = "teams"

urlpatterns = [
    path("", views.team_list, name="list"),
    path("<int:team_id>/", views.team_detail, name="detail"),
    path("<int:team_id>/members/<str:username>/role/", views.member_role, name="member_role"),
    path("<int:team_id>/members/<str:username>/remove/", views.member_remove, name="member_remove"),
]
