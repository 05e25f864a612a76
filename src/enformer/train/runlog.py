"""Run logs: CSV and JSON lines (and TensorBoard when installed).

A run folder gets

* ``train_log.csv``: ``step, epoch, loss, lr, grad_norm, seconds`` every ``log_every`` updates;
* ``eval_log.csv``: ``step, epoch, loss, mean_r, mean_r2, undefined_tracks`` per evaluation;
* ``log.jsonl``: every record of both, one JSON object per line, with ``"kind"`` set to
  ``"train"`` or ``"eval"`` (eval records add the per-assay mean r);
* ``tensorboard/`` event files, when ``torch.utils.tensorboard`` can be imported.

:func:`write_json` writes the run's other JSON files (``summary.json``, ``best/metrics.json``)
atomically, with non-finite numbers as ``null`` as in the logs.

On resume, records after the resumed step (written before the interruption, after the last
checkpoint) are dropped, so the logs read as one uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

from ..io.jobs import atomic_path, write_bytes_atomic, write_json_atomic

__all__ = ["RunLogger", "json_safe", "write_json"]

log = logging.getLogger(__name__)

TRAIN_FIELDS = ("step", "epoch", "loss", "lr", "grad_norm", "seconds")
EVAL_FIELDS = ("step", "epoch", "loss", "mean_r", "mean_r2", "undefined_tracks")


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (also in nested dicts, lists) made ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` (made :func:`json_safe`) to ``path`` atomically, creating its folder."""
    write_json_atomic(path, json_safe(data))


class RunLogger:
    """Appends training and evaluation records to the run folder's logs.

    Parameters
    ----------
    run_dir
        The run folder.
    enabled
        Write anything at all (false on every rank but 0).
    resume_step
        Keep existing records up to this step and drop later ones; ``None`` starts new logs.
    tensorboard
        Also write TensorBoard events if the package is installed.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        enabled: bool = True,
        resume_step: int | None = None,
        tensorboard: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.train_csv = self.run_dir / "train_log.csv"
        self.eval_csv = self.run_dir / "eval_log.csv"
        self.jsonl = self.run_dir / "log.jsonl"
        self._tb: Any = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            for path in (self.train_csv, self.eval_csv, self.jsonl):
                path.unlink(missing_ok=True)
        else:
            self._truncate(resume_step)
        for path, fields in ((self.train_csv, TRAIN_FIELDS), (self.eval_csv, EVAL_FIELDS)):
            if not path.exists():
                with open(path, "w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerow(fields)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.debug("tensorboard is not installed; logging to CSV/JSON only")
            else:
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=resume_step)

    def _truncate(self, step: int) -> None:
        for path in (self.train_csv, self.eval_csv):
            if not path.exists():
                continue
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
            with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(kept)
        if self.jsonl.exists():
            lines = self.jsonl.read_text(encoding="utf-8").splitlines()
            kept_lines = [
                ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= step
            ]
            text = "".join(ln + "\n" for ln in kept_lines)
            write_bytes_atomic(self.jsonl, text.encode("utf-8"))

    def _append(self, path: Path, fields: tuple[str, ...], record: dict[str, Any]) -> None:
        with open(path, "a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow([record.get(k, "") for k in fields])
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(json_safe(record), sort_keys=False) + "\n")

    def train(self, record: dict[str, Any]) -> None:
        """Log a training record (``step``, ``epoch``, ``loss``, ``lr``, ``grad_norm``, ...)."""
        if not self.enabled:
            return
        self._append(self.train_csv, TRAIN_FIELDS, {"kind": "train", **record})
        if self._tb is not None:
            for key in ("loss", "lr", "grad_norm"):
                self._tb.add_scalar(f"train/{key}", record[key], record["step"])

    def eval(self, record: dict[str, Any]) -> None:
        """Log an evaluation record (``step``, ``loss``, ``mean_r``, ``by_assay``, ...)."""
        if not self.enabled:
            return
        self._append(self.eval_csv, EVAL_FIELDS, {"kind": "eval", **record})
        if self._tb is not None:
            step = record["step"]
            for key in ("loss", "mean_r", "mean_r2"):
                self._tb.add_scalar(f"valid/{key}", record[key], step)
            for assay, value in record.get("by_assay", {}).items():
                self._tb.add_scalar(f"valid/r_{assay}", value, step)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None
