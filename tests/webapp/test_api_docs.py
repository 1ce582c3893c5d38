"""Every endpoint of the automation API is documented with an example of what it answers."""

import pytest
from drf_spectacular.generators import SchemaGenerator

# Answers with no JSON body to show: 204s and file downloads.
NO_JSON_EXAMPLE = {("DELETE", "/api/v1/configs/{id}/"), ("DELETE", "/api/v1/token/"),
                   ("DELETE", "/api/v1/teams/{id}/members/{username}/"),
                   ("GET", "/api/v1/runs/{id}/checkpoints/{checkpoint_id}/download/")}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_every_json_answer_has_an_example(schema):
    missing = []
    for method, path, operation in operations(schema):
        contents = [content for response in operation.get("responses", {}).values()
                    for content in response.get("content", {}).values()]
        if (method, path) not in NO_JSON_EXAMPLE and not any("examples" in content for content in contents):
            missing.append(f"{method} {path}")
    assert missing == []


def test_every_json_request_body_has_an_example(schema):
    missing = []
    for method, path, operation in operations(schema):
        json_body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if json_body is not None and "examples" not in json_body and operation["requestBody"].get("required"):
            missing.append(f"{method} {path}")
    assert missing == []


def test_every_operation_has_a_summary(schema):
    assert [f"{m} {p}" for m, p, operation in operations(schema) if not operation.get("summary")] == []
