"""Managing teams from the browser and the API: carol owns the team `lab`, alice is a member,
bob is only in his own team, dave has just signed up.

Every write is tried as: carol (owner) -> allowed, alice (member) -> 403, bob (another team)
-> 404, anonymous -> 401 (API) / sign-in redirect (pages). Then the rules: a team keeps one
owner, a personal team has no other members, unknown and duplicate usernames are named.
"""

from __future__ import annotations

from unittest import mock

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from webapp.runs.models import Run
from webapp.teams.actions import MembershipRejected, add_member, create_team
from webapp.teams.models import Membership, Team


@pytest.fixture
def carol(db, django_user_model):
    return django_user_model.objects.create_user("carol", password="carol-password-1")


@pytest.fixture
def dave(db, django_user_model):
    return django_user_model.objects.create_user("dave", password="dave-password-1")


@pytest.fixture
def lab(alice, bob, carol, dave):
    team = Team.objects.create(name="lab")
    Membership.objects.create(team=team, user=carol, role=Membership.Role.OWNER)
    Membership.objects.create(team=team, user=alice, role=Membership.Role.MEMBER)
    return team


def _api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def _roles(team: Team) -> dict[str, str]:
    return dict(team.memberships.values_list("user__username", "role"))


# --- the permission matrix ----------------------------------------------------------------------

# (method, url, body, status for the owner). Each case starts from a fresh `lab`.
API_WRITES = [
    ("post", "/api/v1/teams/{team}/members/", {"username": "dave", "role": "member"}, 201),
    ("patch", "/api/v1/teams/{team}/members/alice/", {"role": "owner"}, 200),
    ("delete", "/api/v1/teams/{team}/members/alice/", None, 204),
]
LAB_BEFORE = {"carol": "owner", "alice": "member"}


@pytest.mark.parametrize("method,url,body,allowed", API_WRITES)
def test_only_owners_change_members_through_the_api(lab, alice, bob, carol, method, url, body, allowed):
    url = url.format(team=lab.pk)
    for user, expected in [(None, 401), (bob, 404), (alice, 403)]:
        response = getattr(_api(user), method)(url, body, format="json")
        assert response.status_code == expected, (user, response.content)
        assert _roles(lab) == LAB_BEFORE  # nothing changed
    response = getattr(_api(carol), method)(url, body, format="json")
    assert response.status_code == allowed, response.content
    assert _roles(lab) != LAB_BEFORE


def test_the_owner_adds_changes_and_removes_members_through_the_api(lab, carol):
    client = _api(carol)
    added = client.post(f"/api/v1/teams/{lab.pk}/members/", {"username": "dave"}, format="json")
    assert added.status_code == 201 and added.json()["user"] == "dave" and added.json()["role"] == "member"
    promoted = client.patch(f"/api/v1/teams/{lab.pk}/members/dave/", {"role": "owner"}, format="json")
    assert promoted.json()["role"] == "owner"
    assert client.delete(f"/api/v1/teams/{lab.pk}/members/alice/").status_code == 204
    assert _roles(lab) == {"carol": "owner", "dave": "owner"}
    members = client.get(f"/api/v1/teams/{lab.pk}/members/").json()
    assert [(m["user"], m["role"]) for m in members] == [("carol", "owner"), ("dave", "owner")]


def test_anyone_signed_in_creates_a_team_and_owns_it(alice):
    assert _api().post("/api/v1/teams/", {"name": "x"}, format="json").status_code == 401
    response = _api(alice).post("/api/v1/teams/", {"name": "retrieval"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["personal"], body["role"], body["member_count"]) == ("retrieval", False, "owner", 1)
    assert _roles(Team.objects.get(pk=body["id"])) == {"alice": "owner"}


def test_a_team_without_a_name_is_refused(alice):
    response = _api(alice).post("/api/v1/teams/", {"name": "   "}, format="json")
    assert response.status_code == 400 and "name" in response.json()
    with pytest.raises(MembershipRejected) as refused:
        create_team(alice, "  ")
    assert refused.value.field == "name"
    assert not Team.objects.filter(personal_for__isnull=True).exists()


def test_creating_a_team_stores_nothing_when_the_membership_fails(alice):
    with mock.patch.object(Membership.objects, "create", side_effect=RuntimeError("disk full")):
        with pytest.raises(RuntimeError):
            create_team(alice, "half")
    assert not Team.objects.filter(name="half").exists()


def test_the_team_pages_follow_the_same_matrix(client, lab, alice, bob, carol):
    detail = f"/teams/{lab.pk}/"
    pages = [
        ("get", detail, {}, 200),
        ("post", detail, {"username": "dave", "role": "member"}, 302),
        ("post", f"/teams/{lab.pk}/members/alice/role/", {"role": "owner"}, 302),
        ("get", f"/teams/{lab.pk}/members/alice/remove/", {}, 200),
        ("post", f"/teams/{lab.pk}/members/alice/remove/", {}, 302),
    ]
    for method, url, data, allowed in pages:
        anonymous = getattr(client.__class__(), method)(url, data)
        assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"], url
        for user, expected in [(bob, 404), (alice, 403 if method == "post" or "remove" in url else 200)]:
            client.force_login(user)
            assert getattr(client, method)(url, data).status_code == expected, (user, url)
        assert _roles(lab) == LAB_BEFORE
    client.force_login(carol)
    for method, url, data, allowed in pages:
        assert getattr(client, method)(url, data).status_code == allowed, url
    assert _roles(lab) == {"carol": "owner", "dave": "member"}  # dave added; alice promoted, then removed


def test_the_list_page_shows_teams_members_and_creates_a_team(client, lab, alice):
    client.force_login(alice)
    page = client.get("/teams/").content.decode()
    assert 'href="/teams/"' in page  # the nav link
    assert f'href="/teams/{lab.pk}/"' in page and "carol <span class=\"muted\">(owner)</span>" in page
    assert 'id="create-team"' in page and "csrfmiddlewaretoken" in page
    created = client.post("/teams/", {"name": "retrieval"})
    team = Team.objects.get(name="retrieval")
    assert created.status_code == 302 and created["Location"] == f"/teams/{team.pk}/"
    assert _roles(team) == {"alice": "owner"}
    blank = client.post("/teams/", {"name": ""})
    assert blank.status_code == 400 and "This field is required." in blank.content.decode()


def test_only_owners_see_the_member_forms(client, lab, alice, carol):
    client.force_login(alice)
    page = client.get(f"/teams/{lab.pk}/").content.decode()
    assert 'id="add-member"' not in page and "member-role" not in page and "Remove" not in page
    assert "carol" in page and "alice" in page
    client.force_login(carol)
    page = client.get(f"/teams/{lab.pk}/").content.decode()
    assert 'id="add-member"' in page and page.count('class="member-role"') == 2
    assert f'href="/teams/{lab.pk}/members/alice/remove/"' in page


# --- the rules --------------------------------------------------------------------------------


def test_a_team_keeps_its_last_owner(client, lab, alice, carol):
    api = _api(carol)
    demoted = api.patch(f"/api/v1/teams/{lab.pk}/members/carol/", {"role": "member"}, format="json")
    assert demoted.status_code == 400 and "last owner" in demoted.json()["username"][0]
    removed = api.delete(f"/api/v1/teams/{lab.pk}/members/carol/")
    assert removed.status_code == 400 and "last owner" in removed.json()["username"][0]
    client.force_login(carol)
    page = client.post(f"/teams/{lab.pk}/members/carol/role/", {"role": "member"})
    assert page.status_code == 400 and 'class="errorlist role-error"><li>carol is the last owner' in page.content.decode()
    page = client.post(f"/teams/{lab.pk}/members/carol/remove/")
    assert page.status_code == 400 and 'id="remove-error"' in page.content.decode()
    assert _roles(lab) == LAB_BEFORE
    # with a second owner carol may step down, then leave
    api.patch(f"/api/v1/teams/{lab.pk}/members/alice/", {"role": "owner"}, format="json")
    assert api.patch(f"/api/v1/teams/{lab.pk}/members/carol/", {"role": "member"}, format="json").status_code == 200
    assert _api(alice).delete(f"/api/v1/teams/{lab.pk}/members/carol/").status_code == 204
    assert _roles(lab) == {"alice": "owner"}


def test_an_owner_leaving_is_sent_back_to_the_list(client, lab, alice, carol):
    Membership.objects.filter(team=lab, user=alice).update(role=Membership.Role.OWNER)
    client.force_login(carol)
    left = client.post(f"/teams/{lab.pk}/members/carol/remove/")
    assert left.status_code == 302 and left["Location"] == "/teams/"
    assert client.get(f"/teams/{lab.pk}/").status_code == 404


def test_a_personal_team_gets_no_other_members(client, carol, dave):
    personal = carol.personal_team
    response = _api(carol).post(f"/api/v1/teams/{personal.pk}/members/", {"username": "dave"}, format="json")
    assert response.status_code == 400 and "personal team" in response.json()["username"][0]
    client.force_login(carol)
    assert 'id="add-member"' not in client.get(f"/teams/{personal.pk}/").content.decode()
    page = client.post(f"/teams/{personal.pk}/", {"username": "dave", "role": "member"})
    assert page.status_code == 400 and "is a personal team and has no other members" in page.content.decode()
    assert _roles(personal) == {"carol": "owner"}


def test_an_unknown_username_is_named_next_to_the_field(client, lab, carol):
    response = _api(carol).post(f"/api/v1/teams/{lab.pk}/members/", {"username": "zed"}, format="json")
    assert response.status_code == 400 and response.json() == {"username": ["No user is named “zed”."]}
    client.force_login(carol)
    page = client.post(f"/teams/{lab.pk}/", {"username": "zed", "role": "member"}).content.decode()
    field = page[page.index('id="id_username"'):page.index('id="id_role"')]
    assert "No user is named “zed”." in field and 'value="zed"' in page
    assert _roles(lab) == LAB_BEFORE


def test_a_duplicate_membership_or_a_bad_role_is_refused(lab, carol, alice):
    api = _api(carol)
    again = api.post(f"/api/v1/teams/{lab.pk}/members/", {"username": "alice", "role": "owner"}, format="json")
    assert again.status_code == 400 and "already in" in again.json()["username"][0]
    bad = api.patch(f"/api/v1/teams/{lab.pk}/members/alice/", {"role": "boss"}, format="json")
    assert bad.status_code == 400 and "role" in bad.json()
    with pytest.raises(MembershipRejected) as refused:
        add_member(carol, lab, "dave", "boss")
    assert refused.value.field == "role"
    assert api.delete(f"/api/v1/teams/{lab.pk}/members/dave/").status_code == 404  # not a member
    assert _roles(lab) == LAB_BEFORE


def test_a_new_member_sees_the_teams_runs(lab, carol, dave, make_dataset):
    dataset = make_dataset(carol)
    dataset.team = lab
    dataset.save()
    run = Run.objects.create(name="lab run", owner=carol, dataset=dataset, team=lab)
    dave_api = _api(dave)
    assert run.pk not in [r["id"] for r in dave_api.get("/api/v1/runs/").json()["results"]]
    assert dave_api.get(f"/api/v1/runs/{run.pk}/").status_code == 404
    _api(carol).post(f"/api/v1/teams/{lab.pk}/members/", {"username": "dave"}, format="json")
    assert run.pk in [r["id"] for r in dave_api.get("/api/v1/runs/").json()["results"]]
    assert dave_api.get(f"/api/v1/runs/{run.pk}/").status_code == 200
    _api(carol).delete(f"/api/v1/teams/{lab.pk}/members/dave/")
    assert dave_api.get(f"/api/v1/runs/{run.pk}/").status_code == 404
