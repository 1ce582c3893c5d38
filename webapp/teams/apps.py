from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "webapp.teams"
    label = "teams"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_save

        from .models import give_new_user_a_personal_team

        post_save.connect(give_new_user_a_personal_team, sender=settings.AUTH_USER_MODEL,
                          dispatch_uid="teams.personal_team")
