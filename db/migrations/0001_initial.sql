-- LLM Jobs: users, tokens, agents, outputs and feedback history.

CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    email       text UNIQUE,
    role        text NOT NULL DEFAULT 'analyst' CHECK (role IN ('analyst', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    token_hash    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE agents (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    description     text NOT NULL DEFAULT '',
    system_prompt   text NOT NULL DEFAULT '',
    default_model   text NOT NULL,
    default_format  text NOT NULL DEFAULT 'text'
                    CHECK (default_format IN ('text', 'json', 'markdown', 'html')),
    owner_id        bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE llm_outputs (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id           bigint REFERENCES agents (id) ON DELETE SET NULL,
    job_id             bigint,
    template           text NOT NULL,
    model              text NOT NULL,
    context            jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(context) = 'object'),
    format             text NOT NULL CHECK (format IN ('text', 'json', 'markdown', 'html')),
    queue              text NOT NULL DEFAULT 'default' CHECK (queue IN ('high', 'default', 'low')),
    priority           integer NOT NULL DEFAULT 0,
    kind               text NOT NULL DEFAULT 'original'
                       CHECK (kind IN ('original', 're_run', 'regenerate')),
    parent_id          bigint REFERENCES llm_outputs (id) ON DELETE SET NULL,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    prompt             text,
    system_prompt      text,
    raw_response       text,
    parsed_output      jsonb,
    feedback           text NOT NULL DEFAULT 'none'
                       CHECK (feedback IN ('none', 'thumbs_up', 'thumbs_down')),
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error_message      text,
    prompt_tokens      integer,
    completion_tokens  integer,
    cost               numeric(14, 8),
    latency_ms         integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz,
    CHECK (status <> 'completed' OR completed_at IS NOT NULL),
    CHECK (status <> 'failed' OR error_message IS NOT NULL)
);
CREATE INDEX llm_outputs_user_created_idx ON llm_outputs (user_id, created_at DESC, id DESC);
CREATE INDEX llm_outputs_created_idx ON llm_outputs (created_at DESC, id DESC);
CREATE INDEX llm_outputs_status_idx ON llm_outputs (status, created_at DESC);
CREATE INDEX llm_outputs_model_idx ON llm_outputs (model, created_at DESC);
CREATE INDEX llm_outputs_template_idx ON llm_outputs (md5(template), created_at DESC);
CREATE INDEX llm_outputs_parent_idx ON llm_outputs (parent_id) WHERE parent_id IS NOT NULL;
CREATE UNIQUE INDEX llm_outputs_job_idx ON llm_outputs (job_id) WHERE job_id IS NOT NULL;

CREATE TABLE feedback_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    output_id   bigint NOT NULL REFERENCES llm_outputs (id) ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    old_value   text NOT NULL CHECK (old_value IN ('none', 'thumbs_up', 'thumbs_down')),
    new_value   text NOT NULL CHECK (new_value IN ('none', 'thumbs_up', 'thumbs_down')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_events_output_idx ON feedback_events (output_id, created_at);
CREATE INDEX feedback_events_created_idx ON feedback_events (created_at);
