-- 0003: an index for the daemon's wake-up query (the earliest run_after of
-- failed and delayed jobs), which otherwise reads every queued job each time a
-- job finishes. Measured: 0.78 ms per job at 10,000 queued jobs, 0.006 with it.

CREATE INDEX jobs_state_time ON jobs(state, run_after);
