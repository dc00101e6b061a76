-- The schema-valid rates per model (Analytics, Leaderboard) read the outputs that have a JSON
-- Schema from this index alone: few outputs have one, and the rates need only these columns.

CREATE INDEX llm_outputs_schema_outcome_idx
    ON llm_outputs (model, created_at)
    INCLUDE (user_id, schema_valid, schema_first_try)
 WHERE json_schema IS NOT NULL AND schema_valid IS NOT NULL;
