"""cubelab from the terminal: ``python -m webapp.client …`` drives the REST API and websockets.

    export CUBELAB_URL=http://127.0.0.1:8000 CUBELAB_TOKEN=<key from the account page>
    python -m webapp.client run --data chats.jsonl --config small.yaml --follow

uploads the data, queues a run, follows it with a progress bar and prints the final metrics
(cube vs identity vs linear). Also: ``datasets upload|list``, ``runs submit|follow|show|cancel``.
Exit status: 0 when the run succeeded (or the command did its job), 1 when the run ended
otherwise, 2 for bad arguments or an API error (its message is printed).

Only the standard library, ``tqdm`` and ``websockets``: no Django, nothing of the server.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

FINISHED = ("succeeded", "failed", "cancelled", "interrupted")
LOSS_KEY = "train/loss"
METRICS = ("qa_cosine", "recall@1", "recall@5", "mrr")
POLL_SECONDS = 2.0


class ClientError(Exception):
    """Something the user must fix: bad input, an API error, an unreachable server."""


class ApiError(ClientError):
    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body
        super().__init__(f"HTTP {status}: {describe_errors(body)}")


def describe_errors(body: Any) -> str:
    """The API's error shapes ({errors: [{path|line, message}]}, {detail}) as one line."""
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        parts = []
        for error in body["errors"]:
            where = error.get("path") or (f"line {error['line']}" if error.get("line") else "")
            parts.append(f"{where}: {error.get('message')}" if where else str(error.get("message")))
        return "; ".join(parts)
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return body if isinstance(body, str) else json.dumps(body)[:500]


class Api:
    """A small REST client: JSON in and out, multipart uploads, ``Authorization: Token``."""

    def __init__(self, url: str, token: str, timeout: float = 60):
        if not url:
            raise ClientError("no server URL: pass --url or set CUBELAB_URL")
        if not token:
            raise ClientError("no API token: pass --token or set CUBELAB_TOKEN (create one on your account page)")
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def request(self, method: str, path: str, body: Optional[dict] = None,
                files: Optional[dict[str, Path]] = None) -> Any:
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        data = None
        if files is not None:
            data, headers["Content-Type"] = multipart(body or {}, files)
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _parse(response.read(), response.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, _parse(error.read(), error.headers.get("Content-Type", ""))) from None
        except (urllib.error.URLError, OSError) as error:
            raise ClientError(f"cannot reach {self.url}: {getattr(error, 'reason', error)}") from None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Optional[dict] = None, **kwargs) -> Any:
        return self.request("POST", path, body if body is not None else {}, **kwargs)

    def websocket_url(self, path: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + path, "", ""))


def _parse(raw: bytes, kind: str) -> Any:
    if not raw:
        return None
    if "json" in kind:
        return json.loads(raw)
    return raw.decode("utf-8", "replace")


def multipart(fields: dict, files: dict[str, Path]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        if value is None or value == "":
            continue
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, path in files.items():
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        header = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
                  f"Content-Type: {kind}\r\n\r\n")
        parts.append(header.encode() + path.read_bytes() + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --- commands ----------------------------------------------------------------------------------


def upload_dataset(api: Api, path: Path, name: str = "", kind: str = "", team: Optional[int] = None) -> dict:
    if not path.is_file():
        raise ClientError(f"no such file: {path}")
    return api.post("/api/v1/datasets/", {"name": name or path.stem, "kind": kind, "team": team},
                    files={"file": path})


def submit_run(api: Api, dataset: int, config_path: Path, queue: str = "cpu", name: str = "",
               tags: Optional[list[str]] = None) -> dict:
    if not config_path.is_file():
        raise ClientError(f"no such file: {config_path}")
    body = {"dataset": dataset, "config_yaml": config_path.read_text(encoding="utf-8"), "queue": queue,
            "name": name, "tags": tags or []}
    return api.post("/api/v1/runs/", body)


def websocket_messages(api: Api, run_id: int, open_timeout: float = 10) -> Iterator[dict]:
    """The run's live messages (status first); raises on any websocket failure."""
    from websockets.sync.client import connect

    url = api.websocket_url(f"/ws/runs/{run_id}/")
    with connect(url, additional_headers={"Authorization": f"Token {api.token}"},
                 open_timeout=open_timeout) as socket:
        for raw in socket:
            yield json.loads(raw)


def polled_messages(api: Api, run_id: int, interval: float = POLL_SECONDS) -> Iterator[dict]:
    """The same story from the REST API: a status message per poll, with the newest loss."""
    last_step = 0
    while True:
        run = api.get(f"/api/v1/runs/{run_id}/")
        if run["last_step"] > last_step:
            series = api.get(f"/api/v1/runs/{run_id}/metrics/?keys={LOSS_KEY}&since_step={last_step}")
            points = series.get(LOSS_KEY) or []
            if points:
                yield {"type": "step", "step": points[-1][0], "metrics": {LOSS_KEY: points[-1][1]}}
            last_step = run["last_step"]
        yield {"type": "status", "status": run["status"], "last_step": run["last_step"],
               "total_steps": run["total_steps"], "error": run.get("error") or None}
        if run["status"] in FINISHED:
            return
        time.sleep(interval)


def follow_run(api: Api, run_id: int, out=sys.stderr,
               sources: Optional[list[Callable[[Api, int], Iterator[dict]]]] = None) -> dict:
    """Show the run's progress until it finishes; returns the finished run from the API.

    The websocket first; if it fails (refused, dropped, a proxy without websockets) the REST
    API is polled instead, from where the websocket left off.
    """
    from tqdm import tqdm

    bar = tqdm(total=None, unit="step", file=out, dynamic_ncols=True, desc=f"run #{run_id}")
    try:
        for source in sources or [websocket_messages, polled_messages]:
            try:
                for message in source(api, run_id):
                    if _show(bar, message):
                        return api.get(f"/api/v1/runs/{run_id}/")
            except ClientError:
                raise
            except Exception as error:  # websocket trouble of any kind: fall back to polling
                tqdm.write(f"live updates unavailable ({type(error).__name__}: {error}); polling the API",
                           file=out)
            run = api.get(f"/api/v1/runs/{run_id}/")
            if run["status"] in FINISHED:
                return run
        raise ClientError(f"lost track of run #{run_id}")
    finally:
        bar.close()


def _show(bar, message: dict) -> bool:
    """Update the bar from one message; True once the run has finished."""
    kind = message.get("type")
    if message.get("total_steps"):
        bar.total = message["total_steps"]
    step = message.get("step") if kind == "step" else message.get("last_step")
    if step is not None and step > bar.n:
        bar.update(step - bar.n)
    metrics = message.get("metrics") or {}
    if kind == "step" and LOSS_KEY in metrics:
        bar.set_postfix(loss=f"{metrics[LOSS_KEY]:.4f}")
    elif kind == "eval":
        bar.write(f"eval @ step {message.get('step')}: " + ", ".join(
            f"{key.removeprefix('val/')}={value:.4f}" for key, value in metrics.items() if key.startswith("val/")),
            file=bar.fp)
    elif kind == "log" and message.get("level") in ("warning", "error", "WARNING", "ERROR"):
        bar.write(f"[{message['level']}] {message.get('message')}", file=bar.fp)
    return kind == "status" and message.get("status") in FINISHED


def metrics_table(summary: dict) -> str:
    """cube vs identity vs linear on each validation metric the run reported."""
    rows = [f"{'metric':<12}{'cube':>10}{'identity':>10}{'linear':>10}"]
    for name in METRICS:
        values = [summary.get(f"{prefix}val/{name}") for prefix in ("", "baseline/identity/", "baseline/linear/")]
        if all(value is None for value in values):
            continue
        rows.append(f"{name:<12}" + "".join(f"{value:>10.4f}" if isinstance(value, (int, float)) else f"{'-':>10}"
                                            for value in values))
    return "\n".join(rows) if len(rows) > 1 else "(no validation metrics reported)"


def show_run(run: dict) -> str:
    lines = [f"run #{run['id']} {run['name']!r}: {run['status']} on the {run['queue']} queue",
             f"dataset #{run['dataset']} {run.get('dataset_name', '')} · team {run.get('team_name') or '-'} · "
             f"step {run['last_step']}/{run.get('total_steps') or '?'}"]
    if run.get("tags"):
        lines.append("tags: " + ", ".join(run["tags"]))
    if run.get("error"):
        lines.append(f"error: {run['error']}")
    lines.append(metrics_table(run.get("summary") or {}))
    return "\n".join(lines)


def _finish(run: dict, out) -> int:
    print(show_run(run), file=out)
    return 0 if run["status"] == "succeeded" else 1


# --- command line -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m webapp.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("CUBELAB_URL", ""),
                        help="server base URL (env CUBELAB_URL)")
    parser.add_argument("--token", default=os.environ.get("CUBELAB_TOKEN", ""), help="API token (env CUBELAB_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)

    datasets = commands.add_parser("datasets", help="upload and list datasets").add_subparsers(
        dest="action", required=True)
    upload = datasets.add_parser("upload", help="upload a JSONL/CSV/text file")
    upload.add_argument("file", type=Path)
    upload.add_argument("--name", default="")
    upload.add_argument("--kind", choices=["dialogue", "corpus"], default="")
    upload.add_argument("--team", type=int, help="team id (default: your personal team)")
    datasets.add_parser("list", help="list your teams' datasets")

    runs = commands.add_parser("runs", help="submit, follow, show and cancel runs").add_subparsers(
        dest="action", required=True)
    submit = runs.add_parser("submit", help="queue a run")
    submit.add_argument("--dataset", type=int, required=True)
    _run_options(submit)
    for action, text in (("follow", "follow a run until it ends"), ("show", "a run and its metrics"),
                         ("cancel", "ask a run to stop")):
        runs.add_parser(action, help=text).add_argument("id", type=int)

    run = commands.add_parser("run", help="upload data, submit, follow and print the final metrics")
    run.add_argument("--data", type=Path, required=True)
    run.add_argument("--kind", choices=["dialogue", "corpus"], default="")
    _run_options(run)
    return parser


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the run's YAML config")
    parser.add_argument("--queue", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--name", default="")
    parser.add_argument("--tag", action="append", default=[], help="repeatable")
    parser.add_argument("--follow", action="store_true", help="show progress until the run ends")


def main(argv: Optional[list[str]] = None, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args, Api(args.url, args.token), out, err)
    except ClientError as error:
        print(f"error: {error}", file=err)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the run goes on on the server)", file=err)
        return 130


def _dispatch(args, api: Api, out, err) -> int:
    command = args.command if args.command == "run" else f"{args.command} {args.action}"
    if command == "datasets upload":
        dataset = upload_dataset(api, args.file, args.name, args.kind, args.team)
        print(f"dataset #{dataset['id']} {dataset['name']!r}: {dataset['rows']} rows ({dataset['kind']})", file=out)
        for warning in dataset.get("warnings") or []:
            print(f"  warning, line {warning.get('line')}: {warning.get('message')}", file=err)
        return 0
    if command == "datasets list":
        for dataset in api.get("/api/v1/datasets/")["results"]:
            print(f"#{dataset['id']:<5} {dataset['name']:<30} {dataset['kind']:<9} {dataset['rows']:>8} rows", file=out)
        return 0
    if command in ("runs submit", "run"):
        if command == "run":
            dataset = upload_dataset(api, args.data, kind=args.kind)
            print(f"dataset #{dataset['id']}: {dataset['rows']} rows", file=out)
            args.dataset = dataset["id"]
        run = submit_run(api, args.dataset, args.config, args.queue, args.name, args.tag)
        print(f"run #{run['id']} {run['status']} on the {run['queue']} queue", file=out)
        return _finish(follow_run(api, run["id"], out=err), out) if args.follow else 0
    if command == "runs follow":
        return _finish(follow_run(api, args.id, out=err), out)
    if command == "runs show":
        run = api.get(f"/api/v1/runs/{args.id}/")
        print(show_run(run), file=out)
        return 0
    if command == "runs cancel":
        run = api.post(f"/api/v1/runs/{args.id}/cancel/")
        print(f"run #{run['id']}: {run['status']}" + (" (stopping)" if run.get("cancel_requested")
                                                      and run["status"] == "running" else ""), file=out)
        return 0
    raise ClientError(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main())
