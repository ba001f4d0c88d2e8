"""Storage of agenthost's own tables (runs, run events), on SQLite or Postgres."""
