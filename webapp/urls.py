from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Django's auth views: `login`, `logout`, `password_change`, ... (templates/registration/).
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("webapp.api_urls")),
    path("compare/", include("webapp.compare.urls")),
    path("sweeps/", include("webapp.sweeps.urls")),
    path("teams/", include("webapp.teams.urls")),
    path("", include("webapp.cubeview.urls")),
    path("", include("webapp.pages.urls")),
]
