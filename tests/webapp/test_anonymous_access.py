"""A signed-out visitor reaches nothing but the sign-in pages.

Every URL pattern of the project (walked from ``get_resolver()``, so a new page or endpoint
is covered without touching this file) is requested anonymously with GET and POST, its ids
filled with objects that exist (a 404 must not hide a leak). Each answer must be 401, 403,
404, 405 or a redirect to a sign-in page: never a page with content, never a server error.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern

from webapp.configs.models import Config
from webapp.runs.models import Checkpoint, Run
from webapp.sweeps.models import Sweep
from webapp.teams.models import Membership, Team

# URL name -> why a signed-out visitor may open it. Static files are served by WhiteNoise's
# middleware (no URL pattern); the project has no health endpoint.
PUBLIC = {
    "login": "the sign-in page",
    "admin:login": "the admin's sign-in page",
    "password_reset": "Django's password reset: asks for an e-mail address",
    "password_reset_done": "Django's password reset: 'check your e-mail'",
    "password_reset_confirm": "Django's password reset: the link from the e-mail (a bad token says so)",
    "password_reset_complete": "Django's password reset: 'your password has been set'",
}
SIGN_IN_PAGES = ("/accounts/login/", "/admin/login/")
REFUSED = {401, 403, 404, 405}
ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
REGEX_PARAMETER = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")


def walk(patterns=None, parts: tuple = (), namespace: str = ""):
    """(name, route parts from the root, URLPattern) for every pattern of the project."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(part for part in (namespace, pattern.namespace) if part)
            yield from walk(pattern.url_patterns, parts + (pattern.pattern,), inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield name, parts + (pattern.pattern,), pattern


def sample_path(parts: tuple, samples: dict[str, str]) -> str:
    """A concrete URL for a pattern: parameters replaced by sample values, regex syntax dropped."""
    path = ""
    for part in parts:
        text = str(part).replace("^", "").replace("$", "") if isinstance(part, RegexPattern) else str(part)

        def value(match: re.Match) -> str:
            name = match.group("name")
            if match.groupdict().get("converter") == "drf_format_suffix":
                return "." + samples[name]
            if name == "pk":  # the resource is the path segment before it
                return samples[re.findall(r"(\w+)/$", path + text[:match.start()])[-1] + ":pk"]
            return samples[name]

        if isinstance(part, RegexPattern):
            text = REGEX_PARAMETER.sub(value, text).replace("\\.", ".").replace("/?", "/")
        else:
            text = ROUTE_PARAMETER.sub(value, text)
        path += text
    return "/" + path


@pytest.fixture
def samples(alice, make_dataset, settings) -> dict[str, str]:
    """Ids of one object of each kind, all alice's."""
    team = Team.objects.create(name="lab")
    Membership.objects.create(team=team, user=alice, role="owner")
    dataset = make_dataset(alice)
    run = Run.objects.create(name="run", owner=alice, dataset=dataset, status=Run.Status.SUCCEEDED,
                             config_yaml="task: dialogue\n", config={"seed": 1})
    (settings.CHECKPOINT_DIR / f"run-{run.pk}/step-2").mkdir(parents=True)
    (settings.CHECKPOINT_DIR / f"run-{run.pk}/step-2/model.safetensors").write_bytes(b"weights")
    checkpoint = Checkpoint.objects.create(run=run, step=2, path=f"run-{run.pk}/step-2", size_bytes=7)
    config = Config.objects.create(name="config", body="task: dialogue\n", data={}, owner=alice)
    sweep = Sweep.objects.create(name="sweep", owner=alice, dataset=dataset, base_config_yaml="task: dialogue\n",
                                 search_space_yaml="{}")
    ids = {"run_id": run.pk, "dataset_id": dataset.pk, "team_id": team.pk, "sweep_id": sweep.pk,
           "checkpoint_id": checkpoint.pk, "runs:pk": run.pk, "datasets:pk": dataset.pk, "configs:pk": config.pk,
           "teams:pk": team.pk, "sweeps:pk": sweep.pk, "object_id": run.pk, "id": alice.pk, "content_type_id": 1}
    return {**{key: str(value) for key, value in ids.items()}, "username": "alice", "format": "json",
            "app_label": "runs", "uidb64": "MQ", "token": "set-password", "url": "no-such-page/"}


def refusal_problem(client, response, hops: int = 3) -> str | None:
    """Why an anonymous answer is not a refusal; None when it is one. A redirect counts when
    it ends, within a few hops, on a sign-in page (the admin's logout goes through /admin/)."""
    if response.status_code in REFUSED:
        return None
    if response.status_code not in (301, 302):
        return f"answers {response.status_code}"
    location = response["Location"]
    if location.startswith(SIGN_IN_PAGES):
        return None
    if hops and location.startswith("/"):
        return refusal_problem(client, client.get(location), hops - 1)
    return f"redirects to {location}, not to a sign-in page"


def test_every_url_refuses_anonymous_visitors(samples):
    client = Client(raise_request_exception=False)  # a view error must show as a 500, not stop the walk
    problems, walked = [], 0
    for name, parts, pattern in walk():
        path = sample_path(parts, samples)
        assert resolve(path).func == pattern.callback, f"{path} does not reach {name or parts}"
        if name in PUBLIC:
            continue
        walked += 1
        for method in ("get", "post"):
            problem = refusal_problem(client, getattr(client, method)(path))
            if problem:
                problems.append(f"{method.upper()} {path} ({name or path}) {problem}")
    assert walked > 100  # the admin, the auth views, the API and the pages
    assert not problems, "\n".join(problems)


def test_the_public_pages_are_the_sign_in_pages(samples):
    client = Client()
    names = {name for name, _, _ in walk()}
    assert set(PUBLIC) <= names  # an allow-list entry for a page that is gone would hide nothing
    for name, parts, _ in walk():
        if name in PUBLIC:
            assert client.get(sample_path(parts, samples)).status_code == 200, name


@pytest.mark.parametrize("path", ["/api/v1/schema/", "/api/v1/docs/"])
def test_the_api_schema_and_docs_need_a_signed_in_user(samples, alice, path):
    from rest_framework.authtoken.models import Token

    assert Client().get(path).status_code == 401
    token = Token.objects.create(user=alice).key
    response = Client().get(path, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200 and b"cubelab API" in response.content
