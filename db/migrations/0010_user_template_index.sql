-- The templates one user has used, each with its latest output (the dashboard's template filter):
-- one index probe per template, however many outputs the user has.

CREATE INDEX llm_outputs_user_template_idx ON llm_outputs (user_id, md5(template), id DESC);
