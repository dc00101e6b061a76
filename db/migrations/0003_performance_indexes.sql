-- Indexes for the outputs page and the analytics at a million outputs and more: keyset pages end
-- in id DESC, and the analytics read covering indexes instead of the table.

DROP INDEX llm_outputs_template_idx;
CREATE INDEX llm_outputs_template_idx ON llm_outputs (md5(template), id DESC);
CREATE INDEX llm_outputs_rated_idx ON llm_outputs (id DESC) WHERE feedback <> 'none';
CREATE INDEX llm_outputs_user_model_idx ON llm_outputs (user_id, model);
CREATE INDEX llm_outputs_created_cover_idx ON llm_outputs (created_at)
    INCLUDE (model, status, feedback, latency_ms, cost, user_id);
CREATE INDEX llm_outputs_user_created_cover_idx ON llm_outputs (user_id, created_at)
    INCLUDE (model, status, feedback, latency_ms, cost);
-- The recent answers of a model (the submit's completion estimate) without walking its backlog.
CREATE INDEX llm_outputs_model_completed_idx ON llm_outputs (model, created_at DESC)
    WHERE status = 'completed';
