from django.contrib import admin

from .models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "kind", "rows", "owner", "created_at")
    list_filter = ("kind",)
    search_fields = ("name", "sha256")
    readonly_fields = ("sha256", "rows", "size_bytes", "preview", "warnings", "created_at")
