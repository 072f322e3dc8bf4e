"""The committed toolbox reference matches the commands' docstrings."""

from tests.helpers import REPO, run_cli


def test_committed_reference_is_current():
    proc = run_cli(REPO / "run_toolbox.py", "docs", "generate", "--check")
    assert proc.returncode == 0, proc.stderr


def test_check_fails_on_a_stale_reference(tmp_path):
    stale = tmp_path / "toolbox.md"
    stale.write_text("# old\n")
    proc = run_cli(REPO / "run_toolbox.py", "docs", "generate", "--output", stale, "--check")
    assert proc.returncode == 1
    assert "is out of date: run ./run_toolbox.py docs generate" in proc.stderr
    proc = run_cli(REPO / "run_toolbox.py", "docs", "generate", "--output", stale)
    assert proc.returncode == 0 and "### shell run" in stale.read_text()
