"""Events the training loop emits, and the Callback base that observes them.

Events are frozen, plain data: a callback (the CLI's progress bar, the JSONL writer, the
web worker's bridge) never receives the loop itself. Every event carries ``time``, the
unix time at which the trainer emitted it, so consumers can measure delivery latency.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class RunStart:
    config: dict[str, Any]
    device: str
    total_steps: int
    start_step: int  # > 0 when resuming
    train_rows: int
    val_rows: int
    parameters: int
    time: float = field(default_factory=_now)
    type: str = "start"


@dataclass(frozen=True)
class StepEnd:
    step: int  # optimizer steps completed, from 1
    epoch: int
    metrics: dict[str, float]  # train/loss, train/loss/<term>, lr, perf/samples_per_s
    time: float = field(default_factory=_now)
    type: str = "step"


@dataclass(frozen=True)
class EvalEnd:
    step: int
    epoch: int
    metrics: dict[str, float]  # val/..., baseline/identity/val/..., baseline/linear/val/...
    time: float = field(default_factory=_now)
    type: str = "eval"


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str
    size_bytes: int
    best: bool = False
    time: float = field(default_factory=_now)
    type: str = "checkpoint"


@dataclass(frozen=True)
class RunEnd:
    status: str  # succeeded | cancelled | failed
    reason: str  # e.g. "completed", "early stopping", "diverged at step 17", "cancelled"
    step: int
    summary: dict[str, float]
    checkpoint: Optional[str] = None
    time: float = field(default_factory=_now)
    type: str = "end"


@dataclass(frozen=True)
class LogMessage:
    level: str
    message: str
    time: float = field(default_factory=_now)
    type: str = "log"


Event = RunStart | StepEnd | EvalEnd | CheckpointSaved | RunEnd | LogMessage


def event_to_dict(event: Event) -> dict[str, Any]:
    return asdict(event)


class Callback:
    """Override the hooks you need; each defaults to doing nothing."""

    def on_start(self, event: RunStart) -> None: ...

    def on_step(self, event: StepEnd) -> None: ...

    def on_eval(self, event: EvalEnd) -> None: ...

    def on_checkpoint(self, event: CheckpointSaved) -> None: ...

    def on_end(self, event: RunEnd) -> None: ...

    def on_log(self, event: LogMessage) -> None: ...


_HOOKS = {"start": "on_start", "step": "on_step", "eval": "on_eval", "checkpoint": "on_checkpoint",
          "end": "on_end", "log": "on_log"}


def dispatch(callbacks: list[Callback], event: Event) -> None:
    hook = _HOOKS[event.type]
    for callback in callbacks:
        getattr(callback, hook)(event)
