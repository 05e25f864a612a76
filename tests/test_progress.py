"""The package's one progress bar (enformer.io.progress): tqdm, log lines, or nothing."""

from __future__ import annotations

import logging
import sys

from enformer.io import progress_bar


def test_without_tqdm_logs_about_every_tenth(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails: no tqdm
    with caplog.at_level(logging.INFO, logger="enformer.io.progress"):
        with progress_bar(20, "predict", True) as bar:
            for _ in range(20):
                bar.update()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "predict: 2/20" and lines[-1] == "predict: 20/20"
    assert len(lines) == 10
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="enformer.io.progress"):
        with progress_bar(100, "download", True, nbytes=True) as bar:
            bar.update(100)  # downloads stay silent without tqdm
        quiet = progress_bar(5, "off", False)
        quiet.update(5)
        quiet.close()
    assert caplog.records == []
