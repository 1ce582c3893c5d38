from django.apps import AppConfig


class CubeviewConfig(AppConfig):
    name = "webapp.cubeview"
    label = "cubeview"
    default_auto_field = "django.db.models.BigAutoField"
