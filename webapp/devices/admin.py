from django.contrib import admin

from .models import DeviceSpeed


@admin.register(DeviceSpeed)
class DeviceSpeedAdmin(admin.ModelAdmin):
    list_display = ("queue", "device_class", "flops_per_s", "lattice", "host", "measured_at")
    list_filter = ("queue",)
