from drf_spectacular.utils import (OpenApiExample, OpenApiParameter, OpenApiTypes, extend_schema,
                                   extend_schema_view)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from .actions import (MembershipRejected, NotAMember, NotTeamAdmin, add_member, change_role, create_team,
                      remove_member, require_team_admin)
from .models import Team, get_teams_for_user
from .serializers import (MemberAddSerializer, MemberRoleSerializer, MembershipSerializer, TeamCreateSerializer,
                          TeamSerializer)

TEAM_EXAMPLE = OpenApiExample("team", response_only=True, value={
    "id": 3, "name": "retrieval", "personal": False, "role": "member", "member_count": 4,
    "created_at": "2026-11-26T05:00:00Z"})
MEMBER_EXAMPLE = OpenApiExample("member", response_only=True, value={
    "user": "carol", "role": "member", "created_at": "2026-11-26T05:10:00Z"})
REFUSED_EXAMPLE = OpenApiExample("refused", response_only=True, status_codes=["400"], value={
    "username": ["carol is the last owner of “retrieval”: make another member owner first."]})
USERNAME = OpenApiParameter("username", OpenApiTypes.STR, OpenApiParameter.PATH, description="The member's username.")
WRITE_RULES = ("Only the team's owners may change its members (403 for other members, 404 for teams you are "
               "not in); a team always keeps one owner, and a personal team has no other members.")


@extend_schema_view(
    list=extend_schema(summary="List your teams", description="Every team you belong to; your personal team "
                       "has `personal: true`. Objects you create go to it unless you name another `team`.",
                       examples=[TEAM_EXAMPLE]),
    retrieve=extend_schema(summary="Show a team", description="404 for teams you are not in.",
                           examples=[TEAM_EXAMPLE]),
    create=extend_schema(summary="Create a team", description="A shared team; you become its owner.",
                         request=TeamCreateSerializer, responses={201: TeamSerializer},
                         examples=[OpenApiExample("create", request_only=True, value={"name": "retrieval"}),
                                   OpenApiExample("created", response_only=True, status_codes=["201"], value={
                                       "id": 3, "name": "retrieval", "personal": False, "role": "owner",
                                       "member_count": 1, "created_at": "2026-11-26T05:00:00Z"})]),
)
class TeamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Teams own datasets, configs and runs; members see and act on all of them, owners manage members."""

    serializer_class = TeamSerializer

    def get_queryset(self):
        return get_teams_for_user(self.request.user).prefetch_related("memberships")

    def create(self, request):
        serializer = TeamCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = _apply(create_team, request.user, serializer.validated_data["name"])
        team = Team.objects.prefetch_related("memberships").get(pk=team.pk)
        return Response(self.get_serializer(team).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], summary="Members of a team", responses={200: MembershipSerializer(many=True)},
                   examples=[OpenApiExample("members", response_only=True, value=[
                       {"user": "alice", "role": "owner", "created_at": "2026-11-26T05:00:00Z"},
                       {"user": "carol", "role": "member", "created_at": "2026-11-26T05:10:00Z"}])])
    @extend_schema(methods=["POST"], summary="Add a member", description=WRITE_RULES + " 400 names the field: "
                   "an unknown `username`, someone already in the team, a `role` that is not a role.",
                   request=MemberAddSerializer, responses={201: MembershipSerializer, 400: OpenApiTypes.OBJECT},
                   examples=[OpenApiExample("add", request_only=True, value={"username": "carol", "role": "member"}),
                             MEMBER_EXAMPLE,
                             OpenApiExample("unknown user", response_only=True, status_codes=["400"],
                                            value={"username": ["No user is named “carl”."]})])
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def members(self, request, pk=None):
        if request.method == "POST":
            return self._add_member(request)
        team = self.get_object()
        memberships = team.memberships.select_related("user").order_by("created_at", "id")
        return Response(MembershipSerializer(memberships, many=True).data)

    def _add_member(self, request):
        team = self._team_as_admin()
        serializer = MemberAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = _apply(add_member, request.user, team, **serializer.validated_data)
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["PATCH"], summary="Change a member's role", description=WRITE_RULES,
                   parameters=[USERNAME], request=MemberRoleSerializer,
                   responses={200: MembershipSerializer, 400: OpenApiTypes.OBJECT},
                   examples=[OpenApiExample("promote", request_only=True, value={"role": "owner"}),
                             MEMBER_EXAMPLE, REFUSED_EXAMPLE])
    @extend_schema(methods=["DELETE"], summary="Remove a member", description=WRITE_RULES + " An owner may "
                   "remove themselves while another owner remains.", parameters=[USERNAME],
                   responses={204: None, 400: OpenApiTypes.OBJECT}, examples=[REFUSED_EXAMPLE])
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<username>[^/]+)", url_name="member")
    def member(self, request, pk=None, username=None):
        team = self._team_as_admin()
        if request.method == "DELETE":
            _apply(remove_member, request.user, team, username)
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = MemberRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = _apply(change_role, request.user, team, username, serializer.validated_data["role"])
        return Response(MembershipSerializer(membership).data)

    def _team_as_admin(self) -> Team:
        """404 for teams one is not in, then 403 for members who are not owners (before the
        body is read, so a non-owner learns nothing from validation errors)."""
        team = self.get_object()
        _apply(require_team_admin, self.request.user, team)
        return team


def _apply(change, *args, **kwargs):
    """Run a teams action, answering its refusals the REST way."""
    try:
        return change(*args, **kwargs)
    except NotTeamAdmin as error:
        raise PermissionDenied(str(error)) from None
    except NotAMember as error:
        raise NotFound(error.message) from None
    except MembershipRejected as error:
        raise ValidationError({error.field: [error.message]}) from None
