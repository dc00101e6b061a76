-- HTTP API: per-user rate limit on job creation and idempotency keys of job-creating requests.
-- Both live here rather than in process memory so they hold across API processes.

-- One row per user: the start of its current one-window count and the jobs accepted in it.
CREATE TABLE api_rate_limits (
    user_id       bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL CHECK (hits >= 0)
);

-- The first answer to a request sent with an Idempotency-Key, replayed to repeats of it.
CREATE TABLE api_idempotency_keys (
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  text NOT NULL,
    status_code   integer,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX api_idempotency_keys_user_created_idx ON api_idempotency_keys (user_id, created_at);
