"""The comparison page: one template and one script; all state lives in the query string,
so the URL is the thing to share. The script reads everything through the compare API."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .service import DEFAULT_KEYS


@login_required
def compare_page(request):
    return render(request, "compare/compare.html", {"default_keys": ",".join(DEFAULT_KEYS)})
