from rest_framework.test import APIClient

from webapp.configs.models import Config

GOOD = """
task: dialogue
seed: 1
cube: {lattice: [8, 8, 6]}
train: {epochs: 1, batch_size: 8}
teachers: [{name: minilm}]
"""


def test_it_validates_yaml_inline(api_client):
    ok = api_client.post("/api/v1/configs/validate/", {"config_yaml": GOOD}, format="json").json()
    assert ok == {"valid": True, "errors": []}
    bad = api_client.post("/api/v1/configs/validate/", {"config_yaml": GOOD.replace("cube: {", "cube: {stpes: 3, ")},
                          format="json").json()
    assert bad["valid"] is False
    assert bad["errors"][0]["path"] == "cube.stpes" and "steps" in bad["errors"][0]["message"]


def test_it_checks_the_lattice_against_the_teacher_dimension(api_client):
    body = api_client.post("/api/v1/configs/validate/", {"config_yaml": GOOD.replace("[8, 8, 6]", "[8, 8, 8]")},
                           format="json").json()
    assert body["valid"] is False
    assert body["errors"][0]["path"] == "cube.lattice" and "384" in body["errors"][0]["message"]


def test_it_reports_invalid_yaml_with_its_line(api_client):
    body = api_client.post("/api/v1/configs/validate/", {"config_yaml": "task: [dialogue\nseed: 1"},
                           format="json").json()
    assert body["valid"] is False and "line" in body["errors"][0]["message"]


def test_it_serves_the_trainer_json_schema(api_client):
    schema = api_client.get("/api/v1/config-schema/").json()
    assert "cube" in schema["properties"] and "CubeConfig" in schema["$defs"]


def test_it_saves_and_forks_configs(api_client, alice):
    created = api_client.post("/api/v1/configs/", {"name": "base", "body": GOOD}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["data"]["cube"]["steps"] == 8  # defaults resolved
    fork = api_client.post("/api/v1/configs/", {"name": "fork", "body": GOOD, "parent": created.json()["id"]},
                           format="json")
    assert Config.objects.get(pk=fork.json()["id"]).parent_id == created.json()["id"]
    rejected = api_client.post("/api/v1/configs/", {"name": "bad", "body": "task: nope"}, format="json")
    assert rejected.status_code == 400 and Config.objects.count() == 2


def test_it_serves_the_openapi_schema_and_offline_docs(api_client, db):
    schema = api_client.get("/api/v1/schema/")
    assert schema.status_code == 200 and b"/api/v1/runs/{id}/metrics/" in schema.content
    docs = api_client.get("/api/v1/docs/")
    assert docs.status_code == 200 and b"drf_spectacular_sidecar" in docs.content  # no CDN
    assert APIClient().get("/api/v1/docs/").status_code in (401, 403)  # signed-in users only
