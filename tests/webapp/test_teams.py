"""Teams: personal teams, the default team and an explicit `team`, the team endpoints, the
data migration for users older than teams, API tokens (page and API), and the schema."""

from __future__ import annotations

import io

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import dialogue_jsonl
from webapp.configs.models import Config
from webapp.datasets.models import Dataset
from webapp.runs.models import Run
from webapp.teams.models import Membership, Team, default_team

CONFIG = "task: dialogue\nseed: 0\ncube: {lattice: [8, 8, 6], steps: 2}\ntrain: {epochs: 1, batch_size: 8}\n" \
         "teachers: [{name: minilm}]\n"


@pytest.fixture
def lab(alice, bob):
    team = Team.objects.create(name="lab")
    Membership.objects.create(team=team, user=bob, role="owner")
    Membership.objects.create(team=team, user=alice)
    return team


def test_every_new_user_gets_a_personal_team(alice):
    team = alice.personal_team
    assert team.name == "alice" and team.is_personal
    assert list(team.memberships.values_list("user__username", "role")) == [("alice", "owner")]
    assert default_team(alice) == team


def test_objects_go_to_the_personal_team_unless_told(alice, lab, make_dataset):
    assert make_dataset(alice).team == alice.personal_team
    run = Run.objects.create(name="r", owner=alice, dataset=make_dataset(alice))
    assert run.team == alice.personal_team  # the dataset's team


def test_uploads_and_configs_take_an_explicit_team(api_client, alice, bob, lab):
    upload = {"name": "shared", "kind": "dialogue", "team": lab.pk,
              "file": SimpleUploadedFile("qa.jsonl", dialogue_jsonl(12))}
    body = api_client.post("/api/v1/datasets/", upload, format="multipart").json()
    assert body["team"] == lab.pk and body["team_name"] == "lab"
    config = api_client.post("/api/v1/configs/", {"name": "c", "body": CONFIG, "team": lab.pk}, format="json").json()
    assert config["team"] == lab.pk
    # bob, in lab too, sees both
    bob_client = APIClient()
    bob_client.force_authenticate(bob)
    assert [d["name"] for d in bob_client.get("/api/v1/datasets/").json()["results"]] == ["shared"]
    assert [c["name"] for c in bob_client.get("/api/v1/configs/").json()["results"]] == ["c"]


def test_a_team_one_is_not_in_is_refused(api_client, bob):
    foreign = bob.personal_team.pk
    upload = {"name": "x", "kind": "dialogue", "team": foreign,
              "file": SimpleUploadedFile("qa.jsonl", dialogue_jsonl(12))}
    response = api_client.post("/api/v1/datasets/", upload, format="multipart")
    assert response.status_code == 400 and "team" in response.json()["errors"][0]["message"]
    response = api_client.post("/api/v1/configs/", {"name": "c", "body": CONFIG, "team": foreign}, format="json")
    assert response.status_code == 400 and "team" in response.json()
    assert not Dataset.objects.exists() and not Config.objects.exists()


def test_the_upload_page_offers_a_team_only_when_there_is_a_choice(client, alice, bob, lab):
    client.force_login(alice)
    assert b'name="team"' in client.get("/datasets/").content
    page = client.post("/datasets/", {"name": "shared", "kind": "dialogue", "team": lab.pk,
                                      "file": SimpleUploadedFile("qa.jsonl", dialogue_jsonl(12))})
    assert page.status_code == 302 and Dataset.objects.get().team == lab
    lab.delete()
    assert b'name="team"' not in client.get("/datasets/").content


def test_the_team_endpoints_list_teams_and_members(api_client, alice, bob, lab):
    teams = api_client.get("/api/v1/teams/").json()["results"]
    assert [(t["name"], t["personal"], t["role"], t["member_count"]) for t in teams] == [
        ("alice", True, "owner", 1), ("lab", False, "member", 2)]
    members = api_client.get(f"/api/v1/teams/{lab.pk}/members/").json()
    assert [(m["user"], m["role"]) for m in members] == [("bob", "owner"), ("alice", "member")]
    assert api_client.get(f"/api/v1/teams/{bob.personal_team.pk}/members/").status_code == 404


def test_the_data_migration_gives_older_users_a_personal_team(alice, make_dataset):
    from importlib import import_module

    migration = import_module("webapp.teams.migrations.0002_teams_personal_teams")
    dataset = make_dataset(alice)
    run = Run.objects.create(name="old", owner=alice, dataset=dataset)
    for model in (Run, Dataset):  # as before teams: objects without a team, no team, no membership
        model.objects.update(team=None)
    Team.objects.all().delete()
    assert Dataset.objects.get().team is None and Run.objects.get().team is None
    migration.give_everyone_a_personal_team(apps, None)
    team = Team.objects.get(personal_for=alice)
    assert list(team.memberships.values_list("user__username", flat=True)) == ["alice"]
    assert Dataset.objects.get().team == team and Run.objects.get(pk=run.pk).team == team


def test_objects_without_a_team_stay_visible_to_their_owner_only(api_client, alice, bob, make_dataset):
    dataset = make_dataset(alice)
    Dataset.objects.filter(pk=dataset.pk).update(team=None)  # e.g. a bulk insert
    assert [d["id"] for d in api_client.get("/api/v1/datasets/").json()["results"]] == [dataset.pk]
    bob_client = APIClient()
    bob_client.force_authenticate(bob)
    assert bob_client.get(f"/api/v1/datasets/{dataset.pk}/").status_code == 404


# --- tokens -------------------------------------------------------------------------------------


def test_the_token_api_shows_rotates_and_revokes(api_client, alice):
    old = Token.objects.get(user=alice).key
    info = api_client.get("/api/v1/token/").json()
    assert info["exists"] is True and info["prefix"] == old[:6] and "key" not in info
    issued = api_client.post("/api/v1/token/")
    new = issued.json()["key"]
    assert issued.status_code == 201 and new != old and Token.objects.get(user=alice).key == new
    assert api_client.get("/api/v1/token/").status_code == 401  # the old key stopped working
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert api_client.delete("/api/v1/token/").status_code == 204
    assert not Token.objects.filter(user=alice).exists()
    assert api_client.get("/api/v1/runs/").status_code == 401


def test_the_token_page_creates_shows_once_and_revokes(client, alice):
    client.force_login(alice)
    page = client.get("/account/tokens/")
    assert page.status_code == 200 and b"You have no API token" in page.content and b"alice" in page.content
    created = client.post("/account/tokens/", {"action": "issue"})
    key = Token.objects.get(user=alice).key
    assert key.encode() in created.content and b'id="new-token"' in created.content
    again = client.get("/account/tokens/")
    assert key.encode() not in again.content and key[:6].encode() in again.content  # the key is shown once
    client.post("/account/tokens/", {"action": "issue"})
    assert Token.objects.get(user=alice).key != key  # rotated
    client.post("/account/tokens/", {"action": "revoke"})
    assert not Token.objects.filter(user=alice).exists()
    anonymous = client.__class__().get("/account/tokens/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_the_schema_is_valid_and_documents_every_endpoint(db):
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    import json

    schema = json.loads(out.getvalue())
    operations = [op for path in schema["paths"].values() for op in path.values()]
    undocumented = [op["operationId"] for op in operations if not op.get("summary")]
    assert not [name for name in undocumented if not name.startswith("compare")], undocumented
    for path in ("/api/v1/teams/", "/api/v1/teams/{id}/members/", "/api/v1/token/", "/api/v1/runs/{id}/rerun/"):
        assert path in schema["paths"]
    assert "delete" in schema["paths"]["/api/v1/runs/{id}/"] and "delete" in schema["paths"]["/api/v1/datasets/{id}/"]


def test_the_team_command_makes_a_team_and_changes_members(alice, bob):
    out = io.StringIO()
    call_command("team", "lab", "--owner", "alice", "--add", "bob", stdout=out)
    team = Team.objects.get(name="lab")
    assert set(team.memberships.values_list("user__username", "role")) == {("alice", "owner"), ("bob", "member")}
    call_command("team", "lab", "--remove", "bob", stdout=io.StringIO())
    assert list(team.memberships.values_list("user__username", flat=True)) == ["alice"]
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no user named 'zed'"):
        call_command("team", "lab", "--add", "zed", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no shared team"):
        call_command("team", "nope", stdout=io.StringIO())
