from django.contrib import admin

from .models import Sweep, Trial


class TrialInline(admin.TabularInline):
    model = Trial
    extra = 0
    readonly_fields = ("number", "run", "params", "state", "value", "reason")


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "team", "method", "metric", "status", "budget", "parallelism", "created_at")
    list_filter = ("status", "method")
    inlines = [TrialInline]
