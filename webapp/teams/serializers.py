from rest_framework import serializers

from .models import Membership, Team


class MembershipSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "role", "created_at"]
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer):
    personal = serializers.BooleanField(source="is_personal", read_only=True)
    role = serializers.SerializerMethodField(help_text="Your role in the team.")
    member_count = serializers.IntegerField(source="memberships.count", read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "personal", "role", "member_count", "created_at"]
        read_only_fields = fields

    def get_role(self, team: Team) -> str | None:
        request = self.context.get("request")
        if request is None:
            return None
        membership = next((m for m in team.memberships.all() if m.user_id == request.user.pk), None)
        return membership.role if membership else None


class TeamCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, help_text="Shown in team pickers; need not be unique.")


class MemberAddSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, help_text="An existing user's username.")
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER,
                                   help_text="`owner` may change the team's members; `member` may not.")


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)
