"""The results store, with ResultsDB's model: results (testcase, outcome, ref_url,
submit_time, data) in groups (one per run), on SQLite or PostgreSQL. ``ci/run``, the run
queue and ``report history`` all read and write this one store."""
