from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from webapp.teams.models import Membership, Team


class Command(BaseCommand):
    help = ("Make a shared team or change its members: `team lab --add alice --add bob --owner alice`, "
            "`team lab --remove bob`, `team lab` lists the members.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="the team's name (made when it does not exist and members are added)")
        parser.add_argument("--add", action="append", default=[], metavar="USERNAME")
        parser.add_argument("--owner", action="append", default=[], metavar="USERNAME", help="add as owner")
        parser.add_argument("--remove", action="append", default=[], metavar="USERNAME")

    def handle(self, *args, name: str, add: list, owner: list, remove: list, **options):
        teams = Team.objects.filter(name=name, personal_for__isnull=True)
        if teams.count() > 1:
            raise CommandError(f"several shared teams are named {name!r}; rename one in the admin")
        team = teams.first()
        if team is None:
            if not (add or owner):
                raise CommandError(f"no shared team named {name!r}; give --add or --owner to make it")
            team = Team.objects.create(name=name)
            self.stdout.write(f"team {name!r} created (#{team.pk})")
        for username, role in [(u, Membership.Role.MEMBER) for u in add] + [(u, Membership.Role.OWNER) for u in owner]:
            Membership.objects.update_or_create(team=team, user=self._user(username), defaults={"role": role})
        for username in remove:
            Membership.objects.filter(team=team, user=self._user(username)).delete()
        for membership in team.memberships.select_related("user").order_by("created_at", "id"):
            self.stdout.write(f"{membership.user.get_username()} ({membership.role})")

    def _user(self, username: str):
        try:
            return get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
