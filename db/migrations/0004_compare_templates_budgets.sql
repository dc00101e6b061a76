-- Model comparisons with pairwise preferences, a library of versioned prompt templates, and
-- monthly budgets per user.

CREATE TABLE prompt_templates (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    owner_id    bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prompt_template_versions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template_id  bigint NOT NULL REFERENCES prompt_templates (id) ON DELETE CASCADE,
    version      integer NOT NULL CHECK (version >= 1),
    body         text NOT NULL,
    note         text NOT NULL DEFAULT '',
    created_by   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (template_id, version)
);

CREATE TABLE comparisons (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blind       boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comparisons_user_idx ON comparisons (user_id, id DESC);

ALTER TABLE llm_outputs
    ADD COLUMN template_version_id bigint REFERENCES prompt_template_versions (id) ON DELETE SET NULL,
    ADD COLUMN comparison_id bigint REFERENCES comparisons (id) ON DELETE SET NULL;
CREATE INDEX llm_outputs_template_version_idx ON llm_outputs (template_version_id, created_at)
    WHERE template_version_id IS NOT NULL;
CREATE INDEX llm_outputs_comparison_idx ON llm_outputs (comparison_id)
    WHERE comparison_id IS NOT NULL;

-- One row per pair of answers judged in a comparison: 'a' (output_a better), 'b', or 'tie'.
-- Picking a winner among N answers records it as better than each of the others.
CREATE TABLE preferences (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    comparison_id  bigint NOT NULL REFERENCES comparisons (id) ON DELETE CASCADE,
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    output_a       bigint NOT NULL REFERENCES llm_outputs (id) ON DELETE CASCADE,
    output_b       bigint NOT NULL REFERENCES llm_outputs (id) ON DELETE CASCADE,
    outcome        text NOT NULL CHECK (outcome IN ('a', 'b', 'tie')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (output_a <> output_b),
    UNIQUE (comparison_id, output_a, output_b)
);
CREATE INDEX preferences_output_a_idx ON preferences (output_a);
CREATE INDEX preferences_output_b_idx ON preferences (output_b);

ALTER TABLE users
    ADD COLUMN monthly_budget numeric(14, 4) CHECK (monthly_budget IS NULL OR monthly_budget >= 0);
