-- Demo data: the rows `llmjobs seed-demo` writes are marked, so that `--remove` deletes exactly
-- them. Feedback events, preferences and template versions go with the rows they belong to.

ALTER TABLE users ADD COLUMN demo boolean NOT NULL DEFAULT false;
ALTER TABLE llm_outputs ADD COLUMN demo boolean NOT NULL DEFAULT false;
ALTER TABLE prompt_templates ADD COLUMN demo boolean NOT NULL DEFAULT false;
ALTER TABLE comparisons ADD COLUMN demo boolean NOT NULL DEFAULT false;
ALTER TABLE batches ADD COLUMN demo boolean NOT NULL DEFAULT false;
CREATE INDEX llm_outputs_demo_idx ON llm_outputs (id) WHERE demo;
