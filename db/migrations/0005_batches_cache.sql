-- Batches of jobs from CSV or JSONL files, and the response cache.

CREATE TABLE batches (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '',
    template      text NOT NULL,
    model         text NOT NULL,
    format        text NOT NULL CHECK (format IN ('text', 'json', 'markdown', 'html')),
    queue         text NOT NULL CHECK (queue IN ('high', 'default', 'low')),
    columns       jsonb NOT NULL DEFAULT '[]'::jsonb,
    skipped       jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    cancelled_at  timestamptz
);
CREATE INDEX batches_user_idx ON batches (user_id, id DESC);

ALTER TABLE llm_outputs
    ADD COLUMN batch_id bigint REFERENCES batches (id) ON DELETE SET NULL,
    ADD COLUMN batch_row integer,
    ADD COLUMN use_cache boolean NOT NULL DEFAULT false,
    ADD COLUMN cache_key text,
    ADD COLUMN cache_hit_of bigint REFERENCES llm_outputs (id) ON DELETE SET NULL;
CREATE INDEX llm_outputs_batch_idx ON llm_outputs (batch_id, batch_row) WHERE batch_id IS NOT NULL;
-- Completed answers by what was asked: the cache's look-up.
CREATE INDEX llm_outputs_cache_idx ON llm_outputs (cache_key, completed_at DESC)
    WHERE status = 'completed' AND cache_key IS NOT NULL AND cache_hit_of IS NULL;
