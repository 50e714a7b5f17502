-- Why a job is suspected stuck (RUNNABLE far longer than its queue's peers, or asking for more
-- than any compute environment of its queue offers). NULL when nothing is wrong.
ALTER TABLE jobs ADD COLUMN stuck_reason TEXT;
CREATE INDEX jobs_stuck ON jobs (workflow_id) WHERE stuck_reason IS NOT NULL;
