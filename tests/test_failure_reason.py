"""Why an attempt failed, decided from how the trainer ended and what its log says, without
starting a process (scripts.run.failure.failure_reason is a pure function)."""

from __future__ import annotations

import pytest

from scripts.run.failure import failure_reason

INVALID = "trainer exited 0 but its log is not a valid MLPerf log: no run_stop event"
MATCH = "log line 3 matches the failure pattern 'NaN': 'loss is NaN'"


def test_a_clean_exit_with_a_valid_log_and_no_matching_line_is_a_success() -> None:
    assert failure_reason(0) is None
    assert failure_reason(0, container=True, invalid_log="", fail_match=None) is None


@pytest.mark.parametrize(
    ("container", "what"),
    [(False, "process group killed"), (True, "container stopped and removed")],
)
def test_a_timeout_wins_over_the_exit_status_and_the_log(container: bool, what: str) -> None:
    got = failure_reason(-9, timed_out=True, timeout_s=60, container=container, invalid_log=INVALID)
    assert got == f"timed out after 60 s; {what}"


@pytest.mark.parametrize(
    ("status", "container", "reason"),
    [
        (1, False, "trainer exited with status 1"),
        (-11, False, "trainer killed by signal 11"),
        (-9, True, "trainer killed by signal 9"),
        (137, False, "trainer exited with status 137"),
        (
            137,
            True,
            "trainer exited with status 137 (killed by signal 9 in the container; "
            "137: SIGKILL or OOM)",
        ),
        (125, False, "trainer exited with status 125"),
        (125, True, "docker could not start the container (exit 125; the log says why)"),
        (2, True, "trainer exited with status 2"),
    ],
)
def test_a_nonzero_exit_is_a_crash_named_by_its_status(
    status: int, container: bool, reason: str
) -> None:
    # the log is not read after a crash: its facts do not change the reason
    assert failure_reason(status, container=container) == reason
    assert failure_reason(status, container=container, invalid_log=INVALID) == reason


def test_a_clean_exit_with_an_invalid_log_is_a_crash() -> None:
    assert failure_reason(0, invalid_log=INVALID) == INVALID
    assert failure_reason(0, invalid_log=INVALID, fail_match=MATCH) == INVALID  # first wins


def test_a_clean_exit_whose_log_matches_a_failure_pattern_is_a_crash() -> None:
    assert failure_reason(0, fail_match=MATCH) == MATCH
