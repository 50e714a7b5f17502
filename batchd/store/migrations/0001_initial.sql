-- batchd schema v1. Timestamps are epoch seconds (REAL). JSON columns hold rendered values.
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner_uid INTEGER,
    owner_name TEXT,
    sample_col TEXT NOT NULL,
    file_col TEXT NOT NULL,
    columns TEXT NOT NULL,
    metadata_filename TEXT,
    created_at REAL NOT NULL
);

CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    file_name TEXT NOT NULL,
    line INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE workflows (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    definition_filename TEXT,
    base_dir TEXT,
    steps INTEGER NOT NULL,
    created_at REAL NOT NULL,
    submitted_at REAL,
    updated_at REAL NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE analyses (
    workflow_id INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    job_definition TEXT NOT NULL,
    queue TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    vcpus REAL,
    memory INTEGER,
    timeout INTEGER,
    retry TEXT,
    PRIMARY KEY (workflow_id, step)
);

-- One row per (sample, step). vcpus/memory/timeout/queue here override the analysis for the
-- next attempt (set by automatic retries and `batchctl resubmit`).
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    state TEXT NOT NULL,
    queue TEXT NOT NULL,
    outputs TEXT NOT NULL,
    parameters TEXT NOT NULL,
    command TEXT,
    environment TEXT,
    vcpus REAL,
    memory INTEGER,
    timeout INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    spot_failures INTEGER NOT NULL DEFAULT 0,
    other_failures INTEGER NOT NULL DEFAULT 0,
    current_attempt_id INTEGER,
    skipped INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    failure_class TEXT,
    next_check_at REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    UNIQUE (workflow_id, sample_id, step)
);
CREATE INDEX jobs_by_workflow_state ON jobs (workflow_id, state, step);
CREATE INDEX jobs_by_state ON jobs (state, queue);
CREATE INDEX jobs_to_check ON jobs (next_check_at) WHERE state IN ('READY', 'CHECKING');

CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    job_name TEXT NOT NULL UNIQUE,
    backend_job_id TEXT,
    queue TEXT NOT NULL,
    job_definition TEXT NOT NULL,
    vcpus REAL,
    memory INTEGER,
    timeout INTEGER,
    -- the SubmitRequest as sent (JSON), so a resend or a reconciliation needs nothing else
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    -- while SUBMITTING: 'pending' (may be sent) or 'unknown' (maybe created: reconcile first)
    submit_status TEXT,
    status_reason TEXT,
    container_reason TEXT,
    exit_code INTEGER,
    log_stream TEXT,
    failure_class TEXT,
    missing_polls INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    submitted_at REAL,
    runnable_at REAL,
    started_at REAL,
    stopped_at REAL,
    next_poll_at REAL NOT NULL DEFAULT 0,
    UNIQUE (job_id, attempt)
);
CREATE INDEX attempts_to_poll ON attempts (next_poll_at)
    WHERE state IN ('SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING');
CREATE INDEX attempts_submitting ON attempts (next_poll_at) WHERE state = 'SUBMITTING';
CREATE INDEX attempts_by_backend_id ON attempts (backend_job_id);

-- Every state an attempt went through, for history and detection-latency figures.
CREATE TABLE transitions (
    attempt_id INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    reason TEXT,
    at REAL NOT NULL
);
CREATE INDEX transitions_by_attempt ON transitions (attempt_id);
