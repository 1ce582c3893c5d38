from django.contrib import admin

from .models import Checkpoint, LogEntry, MetricPoint, Run, Tag


class CheckpointInline(admin.TabularInline):
    model = Checkpoint
    extra = 0


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "status", "queue", "dataset", "owner", "created_at", "finished_at")
    list_filter = ("status", "queue")
    search_fields = ("name", "notes")
    inlines = [CheckpointInline]


@admin.register(MetricPoint)
class MetricPointAdmin(admin.ModelAdmin):
    list_display = ("run", "key", "step", "value")
    list_filter = ("key",)


@admin.register(LogEntry)
class LogEntryAdmin(admin.ModelAdmin):
    list_display = ("run", "time", "level", "message")
    list_filter = ("level",)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)
