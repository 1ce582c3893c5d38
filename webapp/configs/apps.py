from django.apps import AppConfig


class ConfigsConfig(AppConfig):
    name = "webapp.configs"
    label = "configs"
