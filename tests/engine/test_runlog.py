"""``RunLog``: a record's metrics log keeps its history when a resumed run continues it elsewhere
(what ``scripts/export_default.py`` does with the run it ships)."""

from __future__ import annotations

from padm.engine.runlog import RunLog


def _log(path, steps, loss):
    log = RunLog(path, tensorboard=False)
    for s in steps:
        log.write("train", s, loss=loss)
        if s % 100 == 0:
            log.write("val", s, psnr=30.0 + s / 100)
    return log


def test_resumed_into_empty_folder_keeps_record_history(tmp_path):
    record = _log(tmp_path / "record", [50, 100, 150, 200], loss=1.0)
    run = _log(tmp_path / "run", [250, 300], loss=0.5)  # resumed from the record's step 200
    record.extend_with(run)
    assert [(r["kind"], r["step"]) for r in record.records()] == [
        ("train", 50), ("train", 100), ("val", 100), ("train", 150), ("train", 200), ("val", 200),
        ("train", 250), ("train", 300), ("val", 300)]
    assert (tmp_path / "record" / "train.csv").read_text().splitlines()[1:] == [
        "50,1.0", "100,1.0", "150,1.0", "200,1.0", "250,0.5", "300,0.5"]
    assert len((tmp_path / "record" / "val.csv").read_text().splitlines()) == 1 + 3


def test_full_run_log_replaces_record(tmp_path):
    record = _log(tmp_path / "record", [50, 100, 150], loss=1.0)
    run = _log(tmp_path / "run", [50, 100, 150, 200], loss=0.5)  # the run folder holds the whole history
    record.extend_with(run)
    assert record.records() == run.records()
    assert (tmp_path / "record" / "train.csv").read_text() == (tmp_path / "run" / "train.csv").read_text()
