"""The runs table's query language: parsing (precedence, IN, ranges, errors with their column)
and filtering real rows on config keys, metrics, tags, owners and dates."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from webapp.compare.query import And, Between, Compare, In, Not, Or, QueryError, parse, tokenize
from webapp.compare.table import query_runs

# --- parsing ------------------------------------------------------------------------------


def test_it_binds_and_tighter_than_or_and_not_tighter_than_and():
    tree = parse("status = failed or cube.steps >= 10 and not tag = best")
    assert isinstance(tree, Or)
    left, right = tree.nodes
    assert isinstance(left, Compare) and left.field.kind == "status" and left.value == "failed"
    assert isinstance(right, And)
    steps, negated = right.nodes
    assert steps.field.kind == "config" and steps.field.path == ("cube", "steps") and steps.op == ">="
    assert steps.value == 10 and isinstance(steps.value, int)
    assert isinstance(negated, Not) and negated.node.field.kind == "tag"


def test_it_lets_parentheses_override_precedence():
    tree = parse("(status = failed or status = cancelled) and val/mrr > 0.5")
    assert isinstance(tree, And)
    assert isinstance(tree.nodes[0], Or)
    metric = tree.nodes[1]
    assert metric.field.kind == "metric" and metric.field.path == ("val/mrr",) and metric.value == 0.5


def test_it_parses_in_lists_and_between_ranges():
    tree = parse("cube.steps >= 10 and teacher in (minilm, tiny-bert, 'all mpnet')")
    members = tree.nodes[1]
    assert isinstance(members, In) and members.field.kind == "teacher"
    assert members.values == ("minilm", "tiny-bert", "all mpnet")
    between = parse("val/mrr between 0.2 and 0.5")
    assert isinstance(between, Between) and (between.low, between.high) == (0.2, 0.5)
    assert isinstance(parse("seed not in (1, 2)"), Not)
    assert isinstance(parse("train.lr not between 1e-4 and 1e-2").node, Between)


def test_it_reads_words_numbers_and_literals():
    kinds = [(token.kind, token.value) for token in tokenize("train.lr<=-1e-3 and x = true and d >= 2026-11-01")]
    assert kinds[:3] == [("word", "train.lr"), ("op", "<="), ("number", -1e-3)]
    assert parse("train.compile = true").value is True
    assert parse("date >= 2026-11-01").value == "2026-11-01"
    assert parse("name = \"a \\\"quoted\\\" name\"").value == 'a "quoted" name'


@pytest.mark.parametrize("query, column, words", [
    ("cube.steps >= ", 15, "expected a value"),
    ("cube.steps 10", 12, "expected an operator"),
    ("status = ok and", 16, "expected a field name"),
    ("(status = ok", 13, "expected ')'"),
    ("teacher in (minilm tiny)", 20, "expected ',' or ')'"),
    ("val/mrr between 0.2 0.5", 21, "expected 'and'"),
    ("status = ok status = failed", 13, "expected 'and', 'or'"),
    ("name = 'open", 8, "unterminated string"),
    ("steps # 3", 7, "unexpected character"),
    ("", 1, "empty query"),
])
def test_it_reports_errors_with_their_column(query, column, words):
    with pytest.raises(QueryError) as raised:
        parse(query) if query else parse("")
    assert raised.value.column == column
    assert words in raised.value.message


# --- filtering real rows ------------------------------------------------------------------


def make_run(user, dataset, name, steps=4, lr=1e-3, teachers=("minilm",), seed=1, summary=None, status="succeeded",
             tags=(), created=None):
    from webapp.runs.models import Run

    config = {"task": "dialogue", "seed": seed, "cube": {"lattice": [4, 4, 4], "steps": steps},
              "train": {"lr": lr, "epochs": 2}, "teachers": [{"name": teacher} for teacher in teachers]}
    run = Run.objects.create(name=name, owner=user, dataset=dataset, config=config, summary=summary or {},
                             status=status)
    if tags:
        run.set_tags(list(tags))
    if created:
        Run.objects.filter(pk=run.pk).update(created_at=created)
    return run


@pytest.fixture
def runs(alice, bob, make_dataset):
    dataset = make_dataset(alice, name="faq")
    other = make_dataset(alice, name="chats v2")
    made = {
        "small": make_run(alice, dataset, "small", steps=4, summary={"val/mrr": 0.15, "val/qa_cosine": 0.6},
                          created=datetime(2026, 10, 5, tzinfo=timezone.utc)),
        "mid": make_run(alice, dataset, "mid", steps=10, teachers=("minilm", "tiny-bert"),
                        summary={"val/mrr": 0.3, "val/qa_cosine": 0.7}, tags=["best"]),
        "big": make_run(alice, other, "big", steps=16, lr=3e-4, teachers=("mpnet",),
                        summary={"val/mrr": 0.55, "val/qa_cosine": 0.8}, status="failed"),
        "tiny": make_run(alice, other, "tiny", steps=12, teachers=("tiny-bert",), summary={"val/mrr": 0.21},
                         status="running"),
    }
    make_run(bob, make_dataset(bob, name="bob data"), "bobs", steps=20, summary={"val/mrr": 0.4})
    return made


def names(user, query, sort="name"):
    return [row["name"] for row in query_runs(user, query, sort=sort)["results"]]


@pytest.mark.django_db
def test_it_filters_on_config_keys_and_teachers(alice, runs):
    assert names(alice, "cube.steps >= 10 and teacher in (minilm, tiny-bert)") == ["mid", "tiny"]
    assert names(alice, "cube.steps = 4") == ["small"]
    assert names(alice, "train.lr < 0.001") == ["big"]
    assert names(alice, "teacher != minilm") == ["big", "tiny"]
    assert names(alice, "config.teachers.1.name = tiny-bert") == ["mid"]


@pytest.mark.django_db
def test_it_filters_on_metrics_with_ranges(alice, runs):
    assert names(alice, "val/mrr between 0.2 and 0.5") == ["mid", "tiny"]
    assert names(alice, "val/qa_cosine > 0.65") == ["big", "mid"]
    assert names(alice, "not val/mrr between 0.2 and 0.5") == ["big", "small"]


@pytest.mark.django_db
def test_it_combines_status_tags_datasets_and_dates_with_or(alice, runs):
    assert names(alice, "status = failed or tag = best") == ["big", "mid"]
    assert names(alice, "not tag = best and dataset = faq") == ["small"]
    assert names(alice, "dataset in ('chats v2') and status != running") == ["big"]
    assert names(alice, "date < 2026-11-01") == ["small"]
    assert names(alice, "owner = alice and name ~ i") == ["big", "mid", "tiny"]


@pytest.mark.django_db
def test_it_never_shows_another_users_runs(alice, bob, runs):
    assert names(alice, "cube.steps >= 20") == []
    assert names(bob, "cube.steps >= 20") == ["bobs"]


@pytest.mark.django_db
def test_it_sorts_by_metrics_numerically_and_pages(alice, runs):
    assert names(alice, "", sort="-val/mrr") == ["big", "mid", "tiny", "small"]
    assert names(alice, "", sort="cube.steps") == ["small", "mid", "tiny", "big"]
    page = query_runs(alice, "", sort="cube.steps", page=2, page_size=3, columns=["cube.steps", "val/mrr"])
    assert (page["count"], page["pages"]) == (4, 2)
    assert page["results"][0]["columns"] == {"cube.steps": 16, "val/mrr": 0.55}


@pytest.mark.django_db
def test_it_sorts_by_the_first_tag_name_with_untagged_runs_last(alice, api_client, runs):
    runs["small"].set_tags(["zeta", "alpha"])
    runs["big"].set_tags(["beta"])
    assert names(alice, "", sort="tags") == ["small", "mid", "big", "tiny"]  # alpha < best < beta
    assert names(alice, "", sort="-tag") == ["big", "mid", "small", "tiny"]
    response = api_client.get("/api/v1/compare/runs/", {"sort": "-tags"})  # the Tags header's link
    assert response.status_code == 200
    assert [row["name"] for row in response.json()["results"]] == ["big", "mid", "small", "tiny"]


@pytest.mark.django_db
def test_the_api_answers_400_with_the_column(api_client, runs):
    response = api_client.get("/api/v1/compare/runs/", {"q": "cube.steps >= "})
    assert response.status_code == 400
    assert response.json()["errors"][0]["column"] == 15
    ok = api_client.get("/api/v1/compare/runs/", {"q": "status = succeeded", "columns": "val/mrr"})
    assert ok.status_code == 200
    assert [row["name"] for row in ok.json()["results"]] == ["mid", "small"]


@pytest.mark.django_db
def test_not_and_not_equal_also_match_runs_that_lack_the_key(alice, runs):
    # `tiny` has no val/qa_cosine: it is not > 0.65, so `not` (and `!=`) must include it.
    assert names(alice, "not val/qa_cosine > 0.65") == ["small", "tiny"]
    assert names(alice, "val/qa_cosine != 0.6") == ["big", "mid", "tiny"]
    assert names(alice, "tag != best") == ["big", "small", "tiny"]
    assert names(alice, "val/qa_cosine = null") == ["tiny"]
