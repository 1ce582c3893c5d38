"""The CLI's observers: a progress bar, a JSONL log of every event, and summary.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import IO, Optional

from tqdm import tqdm

from .events import Callback, CheckpointSaved, EvalEnd, LogMessage, RunEnd, RunStart, StepEnd, event_to_dict


def _finite(value):
    """JSON has no NaN/inf: write them as null rather than produce a file other tools reject."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


class JsonlWriter(Callback):
    """Appends every event as one JSON line (so a resumed run extends the same file)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file: Optional[IO[str]] = None

    def _write(self, event) -> None:
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(_finite(event_to_dict(event)), ensure_ascii=False) + "\n")
        self._file.flush()

    on_start = on_step = on_eval = on_checkpoint = on_log = _write

    def on_end(self, event: RunEnd) -> None:
        self._write(event)
        if self._file:
            self._file.close()
            self._file = None


class SummaryWriter(Callback):
    """summary.json: the final value of every metric key seen, baselines included."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.latest: dict[str, float] = {}

    def on_step(self, event: StepEnd) -> None:
        self.latest.update(event.metrics)

    def on_eval(self, event: EvalEnd) -> None:
        self.latest.update(event.metrics)

    def on_end(self, event: RunEnd) -> None:
        body = {"status": event.status, "reason": event.reason, "step": event.step,
                "checkpoint": event.checkpoint, "metrics": self.latest | event.summary}
        self.path.write_text(json.dumps(_finite(body), indent=1, ensure_ascii=False), encoding="utf-8")


class ProgressBar(Callback):
    """A tqdm bar over optimizer steps, with the loss and the latest validation numbers."""

    def __init__(self, stream=None):
        self.stream = stream
        self.bar: Optional[tqdm] = None
        self.postfix: dict[str, str] = {}

    def on_start(self, event: RunStart) -> None:
        self.bar = tqdm(total=event.total_steps, initial=event.start_step, unit="step", file=self.stream,
                        dynamic_ncols=True)
        tqdm.write(f"training on {event.device}: {event.train_rows} train / {event.val_rows} val rows, "
                   f"{event.parameters:,} parameters", file=self.stream)

    def on_step(self, event: StepEnd) -> None:
        if self.bar is not None:
            self.bar.update(event.step - self.bar.n)
            self.postfix["loss"] = f"{event.metrics['train/loss']:.4f}"
            self.bar.set_postfix(self.postfix, refresh=False)

    def on_eval(self, event: EvalEnd) -> None:
        m = event.metrics
        self.postfix["val_cos"] = f"{m.get('val/qa_cosine', float('nan')):.3f}"
        tqdm.write(format_eval(event.step, m), file=self.stream)

    def on_checkpoint(self, event: CheckpointSaved) -> None:
        pass

    def on_log(self, event: LogMessage) -> None:
        tqdm.write(f"[{event.level}] {event.message}", file=self.stream)

    def on_end(self, event: RunEnd) -> None:
        if self.bar is not None:
            self.bar.close()
        tqdm.write(f"run {event.status}: {event.reason}", file=self.stream)


def format_eval(step: int, metrics: dict[str, float]) -> str:
    """A small table: cube vs identity vs linear on each validation metric."""
    rows = [f"eval @ step {step}:", f"  {'metric':<12}{'cube':>9}{'identity':>10}{'linear':>9}"]
    for name in ("qa_cosine", "recall@1", "recall@5", "mrr"):
        values = [metrics.get(f"{prefix}val/{name}") for prefix in ("", "baseline/identity/", "baseline/linear/")]
        rows.append(f"  {name:<12}" + "".join(f"{v:>{w}.4f}" if v is not None else f"{'-':>{w}}"
                                             for v, w in zip(values, (9, 10, 9))))
    return "\n".join(rows)
