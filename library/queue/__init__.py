"""The run queue: runs asked for by events, persisted (SQLite or PostgreSQL) until they are
done, executed N at a time as ``ci/run PROJECT STEP`` processes, never lost on a restart."""
