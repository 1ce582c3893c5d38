from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .tokens import describe, get_token, issue_token, revoke_token


class TokenInfoSerializer(serializers.Serializer):
    exists = serializers.BooleanField()
    prefix = serializers.CharField(allow_null=True, help_text="The first characters of the key.")
    created = serializers.DateTimeField(allow_null=True)


class NewTokenSerializer(TokenInfoSerializer):
    key = serializers.CharField(help_text="Send as `Authorization: Token <key>`. Shown only here.")


class TokenView(APIView):
    """Your API token: one per user. POST issues a new key (revoking the old), DELETE revokes it."""

    @extend_schema(summary="Your API token", description="Whether you have a token, its prefix and age "
                   "(never the key itself).", responses={200: TokenInfoSerializer},
                   examples=[OpenApiExample("token", response_only=True, value={
                       "exists": True, "prefix": "9944b0", "created": "2026-11-26T05:00:00Z"})])
    def get(self, request):
        return Response(describe(get_token(request.user)))

    @extend_schema(summary="Issue a new API token", description="Creates a token, or rotates it: the previous "
                   "key stops working at once. The answer is the only place the full key appears.",
                   request=None, responses={201: NewTokenSerializer},
                   examples=[OpenApiExample("new token", response_only=True, status_codes=["201"], value={
                       "exists": True, "prefix": "9944b0", "created": "2026-11-26T05:00:00Z",
                       "key": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"})])
    def post(self, request):
        return Response(describe(issue_token(request.user), with_key=True), status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke your API token", description="Scripts using it get 401 from now on. "
                   "204 whether or not a token existed.", request=None, responses={204: None})
    def delete(self, request):
        revoke_token(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
