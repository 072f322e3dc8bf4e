"""Progress of long steps: plain lines in CI, never more than the total."""

import logging
import threading

from library import progress


def test_plain_progress_lines_from_several_threads(monkeypatch, caplog):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    with (
        caplog.at_level(logging.INFO, logger="library.progress"),
        progress.progress(40, "queries of sandbox") as advance,
    ):
        threads = [
            threading.Thread(target=lambda: [advance() for _ in range(10)]) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    lines = [r.getMessage() for r in caplog.records]
    assert lines and all(line.startswith("queries of sandbox: ") for line in lines)
    counts = [int(line.split(": ")[1].split("/")[0]) for line in lines]
    assert counts == sorted(counts) and max(counts) < 40 and all("/40 after" in x for x in lines)
