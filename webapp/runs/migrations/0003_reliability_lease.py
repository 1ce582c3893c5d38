# Issue 6: a run's lease (heartbeat + attempt) and the checkpoint a re-queued run resumes from.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="attempt",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="run",
            name="resume_from",
            field=models.CharField(blank=True, help_text="Checkpoint the next attempt resumes from.", max_length=500),
        ),
    ]
