-- The models the workers can serve, published by each worker with its own credentials at start
-- and kept fresh with its heartbeat. Front ends (CLI, API, dashboard) check a model against it,
-- so they need neither the provider keys nor litellm.
--
-- A worker is named host:pid:token. Its models are names (litellm's, e.g. gpt-4o or
-- anthropic/claude-3-5-haiku-latest) or `provider/*` for every name of a provider the worker
-- holds a key for. `listed` models are offered in the pages' model lists; the others are
-- accepted when named. Prices are dollars per token, NULL when unknown.

CREATE TABLE llm_catalog_workers (
    worker text PRIMARY KEY,
    host text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE llm_catalog_models (
    worker text NOT NULL REFERENCES llm_catalog_workers (worker) ON DELETE CASCADE,
    model text NOT NULL,
    provider text NOT NULL,
    listed boolean NOT NULL DEFAULT false,
    input_cost_per_token numeric,
    output_cost_per_token numeric,
    capabilities jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (worker, model)
);

CREATE INDEX llm_catalog_models_model_idx ON llm_catalog_models (model);
