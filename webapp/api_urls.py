"""REST API v1: one router for every app's viewsets, namespaced `api:`.

URL names: api:dataset-list, api:dataset-detail, api:config-list, api:config-detail,
api:config-validate, api:config-schema, api:run-list, api:run-detail, api:run-metrics,
api:run-logs, api:run-cancel, api:run-checkpoints, api:run-checkpoint-download,
api:run-rerun, api:team-list (GET, POST), api:team-detail, api:team-members (GET, POST),
api:team-member (PATCH, DELETE; kwargs pk, username), api:token, api:schema, api:docs.
Sweeps (webapp/sweeps/api_urls.py): api:sweep-list, api:sweep-detail, api:sweep-stop,
api:sweep-validate.
"""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from webapp.accounts.api import TokenView
from webapp.configs.api import ConfigViewSet, config_schema
from webapp.datasets.api import DatasetViewSet
from webapp.runs.api import RunViewSet
from webapp.teams.api import TeamViewSet

app_name = "api"

router = DefaultRouter()
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("configs", ConfigViewSet, basename="config")
router.register("runs", RunViewSet, basename="run")
router.register("teams", TeamViewSet, basename="team")

urlpatterns = [
    path("config-schema/", config_schema, name="config-schema"),
    path("token/", TokenView.as_view(), name="token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("compare/", include("webapp.compare.api_urls")),
    path("cubeview/", include("webapp.cubeview.api_urls")),
    path("", include("webapp.sweeps.api_urls")),
    path("", include(router.urls)),
]
