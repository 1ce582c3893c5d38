from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .models import get_teams_for_user
from .serializers import MembershipSerializer, TeamSerializer

TEAM_EXAMPLE = OpenApiExample("team", response_only=True, value={
    "id": 3, "name": "retrieval", "personal": False, "role": "member", "member_count": 4,
    "created_at": "2026-11-26T05:00:00Z"})


@extend_schema_view(
    list=extend_schema(summary="List your teams", description="Every team you belong to; your personal team "
                       "has `personal: true`. Objects you create go to it unless you name another `team`.",
                       examples=[TEAM_EXAMPLE]),
    retrieve=extend_schema(summary="Show a team", description="404 for teams you are not in.",
                           examples=[TEAM_EXAMPLE]),
)
class TeamViewSet(viewsets.ReadOnlyModelViewSet):
    """Teams own datasets, configs and runs; members see and act on all of them."""

    serializer_class = TeamSerializer

    def get_queryset(self):
        return get_teams_for_user(self.request.user).prefetch_related("memberships")

    @extend_schema(summary="Members of a team", responses={200: MembershipSerializer(many=True)},
                   examples=[OpenApiExample("members", response_only=True, value=[
                       {"user": "alice", "role": "owner", "created_at": "2026-11-26T05:00:00Z"},
                       {"user": "carol", "role": "member", "created_at": "2026-11-26T05:10:00Z"}])])
    @action(detail=True, methods=["get"], pagination_class=None)
    def members(self, request, pk=None):
        team = self.get_object()
        memberships = team.memberships.select_related("user").order_by("created_at", "id")
        return Response(MembershipSerializer(memberships, many=True).data)
