"""The Flink job process reports JSON lines on stdout; anything else there (a JVM log line) is skipped."""
from helpers.flinksql import job_event


def test_a_log_line_on_the_jobs_stdout_is_not_an_event():
    assert job_event('{"event": "canceled", "job_id": "a1"}\n') == {"event": "canceled", "job_id": "a1"}
    assert job_event("2026-05-01 12:00:00,123 WARN  org.apache.flink.runtime.taskmanager.Task\n") == {}
    assert job_event("[1, 2]\n") == {} and job_event("\n") == {}
