"""Create the demo user, the bundled demo dataset and a demo config. Idempotent."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand

from webapp.configs.actions import ConfigRejected, create_config
from webapp.configs.models import Config
from webapp.datasets.actions import create_dataset
from webapp.datasets.models import Dataset

DEMO_DATASET = Path("examples/data/demo_dialogue.jsonl")
DEMO_CONFIG = Path("examples/dialogue.yaml")
# Used when examples/dialogue.yaml is absent: a run that finishes in about a minute on CPU.
FALLBACK_CONFIG = """\
task: dialogue
seed: 0
cube:
  lattice: [8, 8, 6]
  steps: 4
train:
  epochs: 5
  batch_size: 8
teachers:
  - name: minilm
"""


def demo_password_file() -> Path:
    return Path(settings.VAR_DIR) / "demo_password"


def demo_login() -> tuple[str, str | None]:
    """(username, password or None when it was not generated here)."""
    username = settings.CUBELAB_DEMO_USERNAME
    password = os.environ.get("CUBELAB_DEMO_PASSWORD")
    if not password and demo_password_file().exists():
        password = demo_password_file().read_text().strip()
    return username, password


class Command(BaseCommand):
    help = "Create the demo user (password from CUBELAB_DEMO_PASSWORD or generated), dataset and config."

    def handle(self, *args, **options):
        user = self._user()
        self._dataset(user)
        self._config(user)

    def _user(self):
        User = get_user_model()
        username = settings.CUBELAB_DEMO_USERNAME
        user = User.objects.filter(username=username).first()
        env_password = os.environ.get("CUBELAB_DEMO_PASSWORD")
        if user is None:
            password = env_password or secrets.token_urlsafe(12)
            user = User.objects.create_user(username, password=password)
            if not env_password:  # generated: shown once, kept for `runplatform` to print
                path = demo_password_file()
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(password)
                path.chmod(0o600)
                self.stdout.write(f"demo user `{username}` created with password: {password}")
            else:
                self.stdout.write(f"demo user `{username}` created (password from CUBELAB_DEMO_PASSWORD)")
        elif env_password and not user.check_password(env_password):
            user.set_password(env_password)
            user.save(update_fields=["password"])
        return user

    def _dataset(self, user) -> None:
        path = Path(settings.BASE_DIR) / DEMO_DATASET
        if not path.is_file():
            self.stderr.write(f"no demo dataset at {DEMO_DATASET}; skipped")
            return
        if Dataset.objects.filter(owner=user, name="demo dialogue").exists():
            return
        upload = SimpleUploadedFile(path.name, path.read_bytes())
        dataset = create_dataset(user, "demo dialogue", "dialogue", upload)
        self.stdout.write(f"demo dataset: {dataset.rows} rows")

    def _config(self, user) -> None:
        if Config.objects.filter(owner=user, name="demo").exists():
            return
        path = Path(settings.BASE_DIR) / DEMO_CONFIG
        body = path.read_text(encoding="utf-8") if path.is_file() else FALLBACK_CONFIG
        try:
            create_config(user, "demo", body)
        except ConfigRejected as error:
            self.stderr.write(f"{DEMO_CONFIG} is not valid here ({error}); using the built-in demo config")
            create_config(user, "demo", FALLBACK_CONFIG)
        self.stdout.write("demo config `demo` saved")
