"""The sweeps API router, included under /api/v1/ (names api:sweep-list, api:sweep-detail,
api:sweep-stop, api:sweep-validate)."""

from rest_framework.routers import SimpleRouter

from .api import SweepViewSet

router = SimpleRouter()
router.register("sweeps", SweepViewSet, basename="sweep")
urlpatterns = router.urls
