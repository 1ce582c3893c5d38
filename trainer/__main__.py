"""python -m trainer {train,validate,eval,bench} — see `python -m trainer -h`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from .config import ConfigError, check_dimension, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Train and evaluate cube models.")
    commands = parser.add_subparsers(dest="command", required=True)
    train_cmd = commands.add_parser("train", help="train a cube from a YAML config")
    train_cmd.add_argument("config")
    train_cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    train_cmd.add_argument("--resume", metavar="CKPT", help="checkpoint folder or run folder to continue")
    train_cmd.add_argument("--out", metavar="DIR", help="output folder (default: out/<config name>)")
    train_cmd.add_argument("--cache-dir", metavar="DIR", help="teacher embedding cache")
    train_cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    validate_cmd = commands.add_parser("validate", help="check a config without running it")
    validate_cmd.add_argument("config")
    validate_cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    validate_cmd.add_argument("--dim", type=int, help="check the cube against this embedding dimension")
    eval_cmd = commands.add_parser("eval", help="evaluate a checkpoint on a data file")
    eval_cmd.add_argument("checkpoint")
    eval_cmd.add_argument("data")
    eval_cmd.add_argument("--cache-dir", metavar="DIR")
    eval_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    commands.add_parser("bench", help="benchmark training steps (see --help)", add_help=False)

    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["bench"]:
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = parser.parse_args(argv)
    try:
        return {"train": _train, "validate": _validate, "eval": _eval}[args.command](args)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _validate(args) -> int:
    from .data import input_dim

    config = load_config(args.config, args.overrides, dim=args.dim)
    checked = ""
    if args.dim is None:  # the data file's header or the first teacher's config tells the dimension
        dim = input_dim(config)
        if dim is not None:
            check_dimension(config, dim)
            checked = f", checked against {dim}-D inputs"
    print(f"{args.config}: valid ({config.task}, lattice {'×'.join(map(str, config.cube.lattice))}{checked})")
    return 0


def _train(args) -> int:
    from .callbacks import JsonlWriter, ProgressBar, SummaryWriter
    from .loop import train

    config = load_config(args.config, args.overrides)
    out = Path(args.out or Path("out") / Path(args.config).stem)
    out.mkdir(parents=True, exist_ok=True)
    callbacks = [JsonlWriter(out / "metrics.jsonl"), SummaryWriter(out / "summary.json")]
    if not args.quiet:
        callbacks.append(ProgressBar())
    stop = {"requested": False}

    def request_stop(signum, frame):  # first Ctrl-C: checkpoint and end `cancelled`; second: abort
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        print("\nstopping after this step (Ctrl-C again to abort)…", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        result = train(config, out_dir=out, callbacks=callbacks, should_stop=lambda: stop["requested"],
                       resume=args.resume, cache_dir=args.cache_dir, progress=not args.quiet)
    finally:
        signal.signal(signal.SIGINT, previous)
    print(f"outputs in {out}/ (summary.json, metrics.jsonl, checkpoints/)")
    return 0 if result.status in ("succeeded", "cancelled") else 1


def _eval(args) -> int:
    from .evaluate import evaluate_checkpoint
    from .callbacks import format_eval

    metrics = evaluate_checkpoint(args.checkpoint, args.data, cache_dir=args.cache_dir)
    print(json.dumps(metrics, indent=1) if args.json else format_eval(-1, metrics).replace("step -1", "all rows"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
