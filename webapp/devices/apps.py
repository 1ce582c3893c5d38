from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "webapp.devices"
    label = "devices"
    default_auto_field = "django.db.models.BigAutoField"
