# Issue 5: every existing user gets a personal team, and what they own moves into it.

from django.conf import settings
from django.db import migrations


def give_everyone_a_personal_team(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Team = apps.get_model("teams", "Team")
    Membership = apps.get_model("teams", "Membership")
    for user in User.objects.all():
        team, created = Team.objects.get_or_create(personal_for=user, defaults={"name": user.username})
        if created:
            Membership.objects.create(team=team, user=user, role="owner")
        for model in ("datasets.Dataset", "configs.Config", "runs.Run"):
            apps.get_model(model).objects.filter(owner=user, team__isnull=True).update(team=team)


class Migration(migrations.Migration):

    dependencies = [
        ("teams", "0001_initial"),
        ("datasets", "0002_teams_dataset_team"),
        ("configs", "0002_teams_config_team"),
        ("runs", "0004_teams_workflow"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(give_everyone_a_personal_team, migrations.RunPython.noop)]
