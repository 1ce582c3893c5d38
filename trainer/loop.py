"""The training loop: setup → train (step, evaluate, checkpoint) → end, emitting events.

    from trainer import load_config, train
    result = train(load_config("examples/dialogue.yaml"), out_dir="out/demo")

Everything the browser, the CLI and a notebook see arrives through `trainer.events`.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint, write_pointer
from .config import Config, check_dimension
from .cube import Cube
from .data import input_dim, load_pairs
from .distill import TeacherHeads, agreement_weights, head_agreements, initial_teacher_weights
from .events import Callback, CheckpointSaved, EvalEnd, LogMessage, RunEnd, RunStart, StepEnd, dispatch
from .losses import LossInputs, build_loss_stack
from .metrics import baseline_metrics, prefixed, retrieval_metrics
from .pairs import EmbeddedPairs
from .schedule import LRSchedule


class Student(nn.Module):
    """The cube plus one head per teacher space (identity for the space the cube reads)."""

    def __init__(self, config: Config, pairs: EmbeddedPairs):
        super().__init__()
        self.cube = Cube(config.cube, pairs.input_dim)
        self.heads = TeacherHeads(pairs.dims(), input_space=pairs.input_space, input_dim=pairs.input_dim)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.cube(x))  # {space: (B, D_space)}


def split_rows(rows: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded, disjoint train/validation split of row indices."""
    if rows < 4:
        raise ValueError(f"{rows} rows are too few: at least 4 are needed to train and validate")
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed))
    val_rows = min(rows - 2, max(2, round(rows * val_fraction)))
    return order[val_rows:].sort().values, order[:val_rows].sort().values


def epoch_order(rows: int, seed: int, epoch: int) -> torch.Tensor:
    """Batch order of one epoch: a function of (seed, epoch) only, so a resumed run replays it."""
    return torch.randperm(rows, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is `cuda` but no CUDA device is available")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@dataclass
class RunState:
    """Everything about progress that a checkpoint must restore."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # next batch within the epoch
    best: float = -math.inf
    best_step: int = 0
    flat_evals: int = 0
    train_seconds: float = 0.0  # wall time spent in the training loop, summed over resumes
    teacher_weights: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)


class _Run:
    """One training run's objects; `train()` below drives it top to bottom."""

    def __init__(self, config: Config, pairs: EmbeddedPairs, out_dir: Optional[Path], callbacks: list[Callback]):
        self.config, self.pairs, self.out_dir, self.callbacks = config, pairs, out_dir, callbacks
        train_cfg = config.train
        torch.manual_seed(config.seed)
        self.device = pick_device(train_cfg.device)
        self.train_idx, self.val_idx = split_rows(pairs.rows, train_cfg.val_fraction, config.seed)
        self.batch_size = min(train_cfg.batch_size, len(self.train_idx))
        self.batches_per_epoch = len(self.train_idx) // self.batch_size
        self.total_steps = train_cfg.epochs * self.batches_per_epoch
        if train_cfg.max_steps:
            self.total_steps = min(self.total_steps, train_cfg.max_steps)
        self.student = Student(config, pairs).to(self.device)
        self.forward = torch.compile(self.student) if train_cfg.compile else self.student
        self.optimizer = _adamw(self.student, train_cfg.lr, train_cfg.weight_decay)
        self.schedule = LRSchedule(train_cfg.lr, train_cfg.scheduler, self.total_steps, train_cfg.warmup_steps)
        self.losses = build_loss_stack(
            config, spaces=list(pairs.answers), input_space=pairs.input_space, primary_space=pairs.primary_space
        ).to(self.device)
        self.prior_weights = initial_teacher_weights(config, pairs)
        self.state = RunState(teacher_weights=dict(self.prior_weights))
        if len(pairs.answers) > 1:  # each head starts at the best linear map between the spaces
            self.student.heads.init_least_squares(
                pairs.answers[pairs.input_space][self.train_idx].to(self.device),
                {space: t[self.train_idx].to(self.device) for space, t in pairs.answers.items()},
            )
        self.questions = pairs.questions[pairs.input_space].to(self.device)  # (N, D_in)
        self.answers = {space: t.to(self.device) for space, t in pairs.answers.items()}  # {space: (N, D_s)}
        self.baselines = self._baselines()
        self.last_checkpoint: Optional[str] = None
        self.checkpointed_step: Optional[int] = None  # the step last_checkpoint holds

    def emit(self, event) -> None:
        dispatch(self.callbacks, event)

    def autocast(self):
        if self.config.train.precision != "bf16":
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _baselines(self) -> dict[str, float]:
        primary, inputs = self.pairs.primary_space, self.pairs.questions[self.pairs.input_space]
        targets = self.pairs.answers[primary]
        return baseline_metrics(
            inputs[self.train_idx], targets[self.train_idx], inputs[self.val_idx], targets[self.val_idx],
            val_identity=self.pairs.questions[primary][self.val_idx], seed=self.config.seed,
        )

    def train_step(self, rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
        """One optimizer step on `rows`; returns the loss, its terms and the gradient norm."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr_at(self.state.step)
        with self.autocast():
            predictions = self.forward(self.questions[rows])  # {space: (B, D_s)}
        predictions = {space: p.float() for space, p in predictions.items()}  # losses always in fp32
        targets = {space: t[rows] for space, t in self.answers.items()}
        primary = self.pairs.primary_space
        total, parts = self.losses(LossInputs(
            prediction=predictions[primary], target=targets[primary], predictions=predictions,
            targets=targets, teacher_weights=self.state.teacher_weights, step=self.state.step,
        ))
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        max_norm = self.config.train.grad_clip or float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.student.parameters(), max_norm))
        if math.isfinite(grad_norm) and torch.isfinite(total):
            self.optimizer.step()  # a non-finite step is never applied: the weights stay the last good ones
        return total, parts, grad_norm

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.student.eval()
        outputs: dict[str, list[torch.Tensor]] = {space: [] for space in self.answers}
        for start in range(0, len(self.val_idx), 1024):
            with self.autocast():
                predictions = self.forward(self.questions[self.val_idx[start : start + 1024]])
            for space, p in predictions.items():
                outputs[space].append(p.float())
        self.student.train()
        predictions = {space: torch.cat(chunks) for space, chunks in outputs.items()}  # {space: (V, D_s)}
        targets = {space: t[self.val_idx] for space, t in self.answers.items()}
        metrics = prefixed(retrieval_metrics(predictions[self.pairs.primary_space], targets[self.pairs.primary_space]), "val/")
        agreements = head_agreements(predictions, targets)
        if len(agreements) > 1:
            metrics |= {f"val/agreement/{space}": value for space, value in agreements.items()}
        if self.config.distill.teacher_weighting == "agreement":
            self.state.teacher_weights = agreement_weights(agreements, prior=self.prior_weights)
        return metrics | self.baselines

    def checkpoint(self, best: bool = False) -> None:
        if self.out_dir is None:
            return
        checkpoints = self.out_dir / "checkpoints"
        name = f"step-{self.state.step:07d}"
        size = save_checkpoint(checkpoints / name, self.student, self.optimizer, {
            "step": self.state.step, "config": self.config.to_dict(), "schedule": self.schedule.state_dict(),
            "run": self.state.__dict__, "data_sha256": self.pairs.sha256,
        })
        write_pointer(checkpoints, "last", name, self.state.step)
        if best:
            write_pointer(checkpoints, "best", name, self.state.step)
        self.last_checkpoint, self.checkpointed_step = str(checkpoints / name), self.state.step
        self.emit(CheckpointSaved(step=self.state.step, path=self.last_checkpoint, size_bytes=size, best=best))

    def restore(self, path: Path) -> None:
        loaded = load_checkpoint(path)
        _check_resumable(loaded.state, self.config, self.pairs.sha256, loaded.path)
        self.student.load_state_dict(loaded.model)
        if loaded.optimizer:
            self.optimizer.load_state_dict(loaded.optimizer)
        self.schedule.load_state_dict(loaded.state["schedule"])
        self.state = RunState(**loaded.state["run"])
        torch.set_rng_state(loaded.rng["torch"])
        if "cuda" in loaded.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(loaded.rng["cuda"])
        self.last_checkpoint, self.checkpointed_step = str(loaded.path), self.state.step


def _adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    # Decay matrices only: decaying norms' gains and biases towards zero only hurts.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr)


def train(
    config: Config,
    out_dir: Optional[str | Path] = None,
    callbacks: Iterable[Callback] = (),
    should_stop: Optional[Callable[[], bool]] = None,
    resume: Optional[str | Path] = None,
    cache_dir: Optional[str | Path] = None,
    pairs: Optional[EmbeddedPairs] = None,
    progress: bool = False,
) -> RunEnd:
    """Train a cube; returns the final event. `out_dir=None` keeps everything in memory."""
    callbacks = list(callbacks)
    should_stop = should_stop or (lambda: False)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    if pairs is None:
        known = input_dim(config)  # a cube that cannot fit fails now, before any teacher encodes
        if known is not None:
            check_dimension(config, known)
        pairs = load_pairs(config, cache_dir=cache_dir, progress=progress)
    check_dimension(config, pairs.input_dim)  # fail before building anything
    run = _Run(config, pairs, out, callbacks)
    if resume is not None:
        run.restore(Path(resume))
    state, cfg = run.state, config.train
    run.emit(RunStart(config=config.to_dict(), device=str(run.device), total_steps=run.total_steps,
                      start_step=state.step, train_rows=len(run.train_idx), val_rows=len(run.val_idx),
                      parameters=sum(p.numel() for p in run.student.parameters())))
    eval_every = cfg.eval_every or run.batches_per_epoch
    checkpoint_every = cfg.checkpoint_every or run.batches_per_epoch
    window_start, window_samples = time.perf_counter(), 0
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    clock = time.perf_counter()

    def end(status: str, reason: str) -> RunEnd:
        summary = dict(state.last_eval) | {"best/" + cfg.monitor: state.best, "best/step": float(state.best_step)}
        event = RunEnd(status=status, reason=reason, step=state.step, summary=summary, checkpoint=run.last_checkpoint)
        run.emit(event)
        return event

    while state.step < run.total_steps:
        order = epoch_order(len(run.train_idx), config.seed, state.epoch)
        while state.batch < run.batches_per_epoch and state.step < run.total_steps:
            if should_stop():
                run.checkpoint()
                return end("cancelled", f"cancelled at step {state.step}")
            start = state.batch * run.batch_size
            rows = run.train_idx[order[start : start + run.batch_size]]
            total, parts, grad_norm = run.train_step(rows)
            if not (math.isfinite(grad_norm) and torch.isfinite(total)):
                run.emit(LogMessage("error", f"loss {total.item()} / gradient norm {grad_norm}: stopping"))
                return end("failed", f"diverged at step {state.step + 1}")
            state.step, state.batch = state.step + 1, state.batch + 1
            window_samples += len(rows)
            if state.step % cfg.log_every == 0 or state.step == run.total_steps:
                elapsed = time.perf_counter() - window_start
                metrics = {"train/loss": total.item(), "lr": run.optimizer.param_groups[0]["lr"],
                           "perf/samples_per_s": window_samples / max(elapsed, 1e-9)}
                metrics |= {f"train/loss/{name}": value.item() for name, value in parts.items()}
                run.emit(StepEnd(step=state.step, epoch=state.epoch, metrics=metrics))
                window_start, window_samples = time.perf_counter(), 0
            evaluated = state.step % eval_every == 0 or state.step == run.total_steps
            if evaluated:
                if _evaluate_and_track(run):
                    return end("succeeded", f"early stopping at step {state.step}")
            elif state.step % checkpoint_every == 0:
                run.checkpoint()
            now = time.perf_counter()
            state.train_seconds, clock = state.train_seconds + (now - clock), now
            if state.train_seconds >= budget_s and state.step < run.total_steps:
                if not evaluated:  # the run ends with fresh validation metrics and a checkpoint
                    _evaluate_and_track(run)
                if run.checkpointed_step != state.step:
                    run.checkpoint()
                run.emit(LogMessage("info", f"time budget of {cfg.max_minutes:g} min reached at step {state.step}"))
                return end("succeeded", f"time budget of {cfg.max_minutes:g} min reached at step {state.step}")
        if state.batch >= run.batches_per_epoch:
            state.epoch, state.batch = state.epoch + 1, 0
    return end("succeeded", "completed")


# What a checkpoint's weights depend on: the cube's shape and the spaces (teachers) its heads
# map into. Everything else (steps, losses, lr, epochs, devices) may change on resume.
_CUBE_SHAPE = ("lattice", "state_dim", "hidden_dim", "cell", "neighbourhood", "projection")
_TEACHER_SPACE = ("name", "revision", "pooling", "max_length", "normalize")


def _model_signature(config: dict) -> dict:
    cube = config.get("cube") or {}
    return {
        "task": config.get("task"),
        **{f"cube.{key}": _plain(cube.get(key)) for key in _CUBE_SHAPE},
        "teachers": [{key: teacher.get(key) for key in _TEACHER_SPACE} for teacher in config.get("teachers") or []],
    }


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _check_resumable(saved: dict, config: Config, data_sha256: str, path) -> None:
    """ValueError naming what differs when a checkpoint belongs to other data or another model."""
    problems = []
    if saved.get("data_sha256") and saved["data_sha256"] != data_sha256:
        problems.append(f"its data had sha256 {saved['data_sha256'][:12]}…, this run's data {data_sha256[:12]}…")
    if saved.get("config"):
        before, now = _model_signature(saved["config"]), _model_signature(config.to_dict())
        problems += [f"`{key}` was {json.dumps(before[key])}, now {json.dumps(now[key])}"
                     for key in before if before[key] != now[key]]
    if problems:
        raise ValueError(f"cannot resume from {path}: " + "; ".join(problems))


def _evaluate_and_track(run: _Run) -> bool:
    """Evaluate, checkpoint when due or improved; True when early stopping says stop."""
    state, cfg = run.state, run.config.train
    metrics = run.evaluate()
    state.last_eval = metrics
    run.emit(EvalEnd(step=state.step, epoch=state.epoch, metrics=metrics))
    score = metrics.get(cfg.monitor, -math.inf)
    improved = score > state.best + 1e-6
    if improved:
        state.best, state.best_step, state.flat_evals = score, state.step, 0
    else:
        state.flat_evals += 1
    run.schedule.observe(score)
    checkpoint_every = cfg.checkpoint_every or run.batches_per_epoch
    if improved or state.step % checkpoint_every == 0 or state.step == run.total_steps:
        run.checkpoint(best=improved)
    return bool(cfg.early_stopping_patience) and state.flat_evals >= cfg.early_stopping_patience
