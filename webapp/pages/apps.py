from django.apps import AppConfig


class PagesConfig(AppConfig):
    """Server-rendered browser pages; each has one template and one script."""

    name = "webapp.pages"
    label = "pages"
