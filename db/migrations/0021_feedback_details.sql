-- Feedback that explains itself: reason tags from a list admins keep, a comment and a corrected
-- answer on an output, each change kept in feedback_events; review queues whose items are
-- reserved for one reviewer at a time; LLM judges whose verdicts are ordinary jobs' answers,
-- kept apart from people's feedback.

-- The reasons a person may give. A removed reason stays on the outputs that have it.
CREATE TABLE feedback_reasons (
    name         text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9 _-]{0,31}$'),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    position     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO feedback_reasons (name, description, position) VALUES
    ('wrong', 'says something false', 1),
    ('incomplete', 'leaves out part of what was asked', 2),
    ('off-format', 'not in the format asked for', 3),
    ('too long', 'says more than was needed', 4),
    ('unsafe', 'harmful, private or inappropriate', 5),
    ('great', 'an answer to keep', 6);

-- Adding columns with constant defaults rewrites no row.
ALTER TABLE llm_outputs
    ADD COLUMN feedback_reasons text[] NOT NULL DEFAULT '{}',
    ADD COLUMN feedback_comment text,
    ADD COLUMN corrected_answer text;

-- Each event keeps the feedback as it was left by that change, and which parts it changed.
ALTER TABLE feedback_events
    ADD COLUMN reasons text[] NOT NULL DEFAULT '{}',
    ADD COLUMN comment text,
    ADD COLUMN corrected_answer text,
    ADD COLUMN changed text[] NOT NULL DEFAULT '{feedback}';

-- Thumbs-down reasons over time and comment search read only the outputs that have them.
CREATE INDEX llm_outputs_reasons_idx ON llm_outputs (created_at)
    INCLUDE (user_id, model, template_version_id, feedback)
 WHERE feedback_reasons <> '{}';
CREATE INDEX llm_outputs_commented_idx ON llm_outputs (user_id, created_at DESC, id DESC)
 WHERE feedback_comment IS NOT NULL;

-- Review queues: a scope of outputs fixed when the queue is made, reviewed one after another.
CREATE TABLE review_queues (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    owner_id            bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the filters it was made from, as the page shows them
    scope               jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(scope) = 'object'),
    blind               boolean NOT NULL DEFAULT false,
    reviewers_per_item  integer NOT NULL DEFAULT 1 CHECK (reviewers_per_item BETWEEN 1 AND 5),
    demo                boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX review_queues_owner_idx ON review_queues (owner_id, id DESC);

CREATE TABLE review_items (
    queue_id   bigint NOT NULL REFERENCES review_queues (id) ON DELETE CASCADE,
    output_id  bigint NOT NULL REFERENCES llm_outputs (id) ON DELETE CASCADE,
    position   integer NOT NULL,
    PRIMARY KEY (queue_id, output_id)
);
CREATE INDEX review_items_position_idx ON review_items (queue_id, position);
CREATE INDEX review_items_output_idx ON review_items (output_id);

-- An item a reviewer holds until expires_at: nobody else is given it meanwhile.
CREATE TABLE review_reservations (
    queue_id    bigint NOT NULL,
    output_id   bigint NOT NULL,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (queue_id, output_id, user_id),
    FOREIGN KEY (queue_id, output_id) REFERENCES review_items ON DELETE CASCADE
);

-- What each reviewer said of an item (the output's own feedback holds the latest word).
CREATE TABLE review_marks (
    queue_id     bigint NOT NULL,
    output_id    bigint NOT NULL,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    feedback     text NOT NULL CHECK (feedback IN ('none', 'thumbs_up', 'thumbs_down')),
    reasons      text[] NOT NULL DEFAULT '{}',
    skipped      boolean NOT NULL DEFAULT false,
    reviewed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue_id, output_id, user_id),
    FOREIGN KEY (queue_id, output_id) REFERENCES review_items ON DELETE CASCADE
);

-- LLM judges: a model and a rubric template. Each verdict is an ordinary job's json answer.
CREATE TABLE judges (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    model       text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    rubric      text NOT NULL CHECK (length(rubric) BETWEEN 1 AND 20000),
    created_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    demo        boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE judge_verdicts (
    judge_id         bigint NOT NULL REFERENCES judges (id) ON DELETE CASCADE,
    -- the output judged
    output_id        bigint NOT NULL REFERENCES llm_outputs (id) ON DELETE CASCADE,
    -- the judge's job: its parsed answer is {"verdict": "pass" | "fail", "reason": "..."}
    judge_output_id  bigint NOT NULL REFERENCES llm_outputs (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (judge_id, output_id)
);
CREATE INDEX judge_verdicts_output_idx ON judge_verdicts (output_id);
CREATE INDEX judge_verdicts_judge_output_idx ON judge_verdicts (judge_output_id);
