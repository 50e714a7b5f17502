-- `status`, `dashboard` and the submitter's jobs-in-flight per queue counted jobs with a
-- GROUP BY over every job concerned (the dashboard: every job in the database): ~20 ms at
-- 100,000 jobs, before every claim of 100 for the submitter, and growing with each project
-- kept. The counts per (workflow, step, queue, state) are kept here instead, by triggers, in
-- the same transaction as each change, so they cannot drift from the jobs.
CREATE TABLE job_counts (
    workflow_id INTEGER NOT NULL,
    step INTEGER NOT NULL,
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, step, queue, state)
) WITHOUT ROWID;

INSERT INTO job_counts (workflow_id, step, queue, state, n)
    SELECT workflow_id, step, queue, state, count(*) FROM jobs
    GROUP BY workflow_id, step, queue, state;

CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (workflow_id, step, queue, state, n)
        VALUES (NEW.workflow_id, NEW.step, NEW.queue, NEW.state, 1)
        ON CONFLICT (workflow_id, step, queue, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER job_counts_update AFTER UPDATE OF state, queue ON jobs
WHEN OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue BEGIN
    UPDATE job_counts SET n = n - 1
        WHERE workflow_id = OLD.workflow_id AND step = OLD.step AND queue = OLD.queue
          AND state = OLD.state;
    INSERT INTO job_counts (workflow_id, step, queue, state, n)
        VALUES (NEW.workflow_id, NEW.step, NEW.queue, NEW.state, 1)
        ON CONFLICT (workflow_id, step, queue, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1
        WHERE workflow_id = OLD.workflow_id AND step = OLD.step AND queue = OLD.queue
          AND state = OLD.state;
END;
