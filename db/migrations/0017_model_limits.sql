-- Provider limits per model, held by every worker together.
--
-- A limit names a model exactly, or a prefix ending in '/' (`openai/`): a model takes the exact
-- limit, else the longest prefix that starts its name. Each model has its own bucket, whatever
-- limit it takes. A limit may cap requests per minute (rpm), tokens per minute (tpm: prompt and
-- answer, estimated when the call starts and corrected by the real usage after it) and calls in
-- flight (max_concurrent). Workers read this table at every fetch: a change needs no restart.
CREATE TABLE llmjobs_model_limits (
    pattern text PRIMARY KEY CHECK (length(pattern) BETWEEN 1 AND 200),
    rpm integer CHECK (rpm > 0),
    tpm bigint CHECK (tpm > 0),
    max_concurrent integer CHECK (max_concurrent > 0),
    source text NOT NULL DEFAULT 'admin' CHECK (source IN ('env', 'admin')),
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(rpm, tpm, max_concurrent) > 0)
);

-- A model's buckets, as leaky buckets: each holds the time at which it is empty again, so a
-- start reads and writes one row. `paused_until`: a provider's 429 stops every worker's calls to
-- the model until then. `typical_completion`: the tokens of the model's recent answers
-- (a moving average), the answer's part of the estimate of a call's tokens.
CREATE TABLE llmjobs_model_buckets (
    model text PRIMARY KEY,
    requests_empty_at timestamptz NOT NULL DEFAULT '-infinity',
    tokens_empty_at timestamptz NOT NULL DEFAULT '-infinity',
    paused_until timestamptz,
    typical_completion integer
);

-- The calls of limited models: one row per job (its latest attempt). A call is in flight while
-- its row is unfinished, its job runs and its worker's heartbeat is fresh: a killed worker's
-- calls stop counting once its heartbeat is stale. Kept an hour for the Queues page.
CREATE TABLE llmjobs_model_calls (
    job_id bigint PRIMARY KEY,
    model text NOT NULL,
    worker_id bigint,
    started_at timestamptz NOT NULL,
    tokens_estimated integer NOT NULL,
    tokens_used integer,
    finished_at timestamptz
);
CREATE INDEX llmjobs_model_calls_model_idx ON llmjobs_model_calls (model, started_at);
CREATE INDEX llmjobs_model_calls_running_idx ON llmjobs_model_calls (model)
    WHERE finished_at IS NULL;

-- The 429s providers answered, kept an hour for the Queues page.
CREATE TABLE llmjobs_rate_limited (
    model text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    pause_s double precision NOT NULL
);
CREATE INDEX llmjobs_rate_limited_model_idx ON llmjobs_rate_limited (model, at);

-- The limit a model takes: its exact one, else the longest prefix of its name.
CREATE FUNCTION llmjobs_model_limit(p_model text)
    RETURNS llmjobs_model_limits
    LANGUAGE sql
    STABLE
AS $$
    SELECT *
      FROM llmjobs_model_limits
     WHERE pattern = p_model OR (right(pattern, 1) = '/' AND starts_with(p_model, pattern))
     ORDER BY pattern = p_model DESC, length(pattern) DESC
     LIMIT 1
$$;

-- The output id an LLM job's arguments name, or NULL.
CREATE FUNCTION llmjobs_output_id(p_args jsonb)
    RETURNS bigint
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT CASE WHEN p_args->>'output_id' ~ '^[0-9]{1,18}$'
                THEN (p_args->>'output_id')::bigint END
$$;

-- A limit's buckets, for a minute of p_minute seconds. Counts are checked over a window of the
-- minute and half a second (the calls of one start reach the provider a little apart). A bucket
-- of `burst` units (2 seconds' worth, at least one request) drains at a rate that keeps any
-- window at or under the limit: the burst plus what drains in the window.
CREATE FUNCTION llmjobs_limit_rates(
    p_limit llmjobs_model_limits,
    p_minute double precision,
    OUT request_burst double precision,
    OUT request_rate double precision,
    OUT token_burst double precision,
    OUT token_rate double precision
)
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT b.rb,
           (p_limit.rpm - b.rb + 1) / (p_minute + 0.5) / 1.001,
           b.tb,
           greatest(p_limit.tpm - b.tb, p_limit.tpm * 0.01) / (p_minute + 0.5) / 1.001
      FROM (SELECT greatest(1, floor(p_limit.rpm / 30.0)) AS rb,
                   greatest(1, p_limit.tpm / 30.0) AS tb) AS b
$$;

-- Take capacity for one call of p_model by job p_job_id, estimated at p_tokens tokens besides
-- the answer: true, with the call recorded, when every bucket of its limit has room; false,
-- with nothing changed, when one is full, the model is paused, or its calls in flight are at
-- the cap. A model without limit always has room (and nothing is recorded). The bucket row is
-- locked until the statement ends: two workers taking capacity for one model take turns.
CREATE FUNCTION llmjobs_take_capacity(
    p_model text,
    p_job_id bigint,
    p_worker_id bigint,
    p_tokens integer,
    p_minute double precision,
    p_stalled double precision
)
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
DECLARE
    lim llmjobs_model_limits := llmjobs_model_limit(p_model);
    bucket llmjobs_model_buckets;
    rates record;
    t timestamptz := clock_timestamp();
    tokens integer;
    level double precision;
    requests_at timestamptz;
    tokens_at timestamptz;
BEGIN
    IF lim.pattern IS NULL THEN
        RETURN true;
    END IF;
    INSERT INTO llmjobs_model_buckets (model) VALUES (p_model) ON CONFLICT DO NOTHING;
    SELECT * INTO bucket FROM llmjobs_model_buckets WHERE model = p_model FOR UPDATE;
    IF bucket.paused_until > t THEN
        RETURN false;
    END IF;
    IF lim.max_concurrent IS NOT NULL AND (
        SELECT count(*)
          FROM llmjobs_model_calls AS c
          JOIN procrastinate_jobs AS j ON j.id = c.job_id AND j.status = 'doing'
          JOIN procrastinate_workers AS w ON w.id = c.worker_id
         WHERE c.model = p_model AND c.finished_at IS NULL AND c.job_id <> p_job_id
           AND w.last_heartbeat > t - make_interval(secs => p_stalled)
    ) >= lim.max_concurrent THEN
        RETURN false;
    END IF;
    rates := llmjobs_limit_rates(lim, p_minute);
    requests_at := bucket.requests_empty_at;
    tokens_at := bucket.tokens_empty_at;
    tokens := least(p_tokens + coalesce(bucket.typical_completion, 256), 2000000000);
    IF lim.rpm IS NOT NULL THEN
        level := greatest(0, extract(epoch FROM requests_at - t)) * rates.request_rate;
        IF level + 1 > rates.request_burst + 1e-9 THEN
            RETURN false;
        END IF;
        requests_at := greatest(requests_at, t) + make_interval(secs => 1 / rates.request_rate);
    END IF;
    IF lim.tpm IS NOT NULL THEN
        level := greatest(0, extract(epoch FROM tokens_at - t)) * rates.token_rate;
        -- a call larger than the burst waits for an empty bucket
        IF level > 0 AND level + tokens > rates.token_burst THEN
            RETURN false;
        END IF;
        tokens_at := greatest(tokens_at, t) + make_interval(secs => tokens / rates.token_rate);
    END IF;
    UPDATE llmjobs_model_buckets
       SET requests_empty_at = requests_at, tokens_empty_at = tokens_at
     WHERE model = p_model;
    INSERT INTO llmjobs_model_calls AS c (job_id, model, worker_id, started_at, tokens_estimated)
    VALUES (p_job_id, p_model, p_worker_id, t, tokens)
    ON CONFLICT (job_id) DO UPDATE
       SET model = excluded.model, worker_id = excluded.worker_id,
           started_at = excluded.started_at, tokens_estimated = excluded.tokens_estimated,
           tokens_used = NULL, finished_at = NULL;
    RETURN true;
END;
$$;

-- The end of a call taken by llmjobs_take_capacity: the call is no longer in flight; with its
-- real usage (p_tokens, p_completion; NULL when the call got no answer) the token bucket is
-- corrected by what the estimate missed or overstated and the typical answer follows; each
-- request beyond the first (a re-ask) is counted in the request bucket, and none (p_requests 0:
-- the answer came from the cache) gives back the request taken.
CREATE FUNCTION llmjobs_release_capacity(
    p_job_id bigint,
    p_tokens integer,
    p_completion integer,
    p_requests integer,
    p_minute double precision
)
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    call llmjobs_model_calls;
    lim llmjobs_model_limits;
    rates record;
BEGIN
    UPDATE llmjobs_model_calls
       SET finished_at = clock_timestamp(), tokens_used = p_tokens
     WHERE job_id = p_job_id AND finished_at IS NULL
    RETURNING * INTO call;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    lim := llmjobs_model_limit(call.model);
    IF lim.pattern IS NULL THEN
        RETURN;
    END IF;
    rates := llmjobs_limit_rates(lim, p_minute);
    UPDATE llmjobs_model_buckets AS b
       SET tokens_empty_at = CASE
               WHEN lim.tpm IS NULL OR p_tokens IS NULL THEN b.tokens_empty_at
               ELSE b.tokens_empty_at
                    + make_interval(secs => (p_tokens - call.tokens_estimated) / rates.token_rate)
           END,
           requests_empty_at = CASE
               WHEN lim.rpm IS NULL OR coalesce(p_requests, 1) = 1 THEN b.requests_empty_at
               WHEN p_requests = 0
                   THEN b.requests_empty_at - make_interval(secs => 1 / rates.request_rate)
               ELSE greatest(b.requests_empty_at, clock_timestamp())
                    + make_interval(secs => (p_requests - 1) / rates.request_rate)
           END,
           typical_completion = CASE
               WHEN p_completion IS NULL THEN b.typical_completion
               WHEN b.typical_completion IS NULL THEN p_completion
               ELSE round(0.8 * b.typical_completion + 0.2 * p_completion)
           END
     WHERE b.model = call.model;
END;
$$;

-- A provider's 429: every worker's calls to p_model wait p_seconds.
CREATE FUNCTION llmjobs_pause_model(p_model text, p_seconds double precision)
    RETURNS timestamptz
    LANGUAGE sql
AS $$
    INSERT INTO llmjobs_rate_limited (model, pause_s) VALUES (p_model, p_seconds);
    INSERT INTO llmjobs_model_buckets AS b (model, paused_until)
    VALUES (p_model, clock_timestamp() + make_interval(secs => p_seconds))
    ON CONFLICT (model) DO UPDATE
       SET paused_until = greatest(b.paused_until, excluded.paused_until)
    RETURNING paused_until;
$$;

-- The fetch of 0016, with provider limits. Without limits or paused models (the usual case) it
-- is 0016's fetch. Otherwise each job is picked as procrastinate_fetch_job_v2 picks it (the same
-- conditions and order, skipping the jobs of models found full in this fetch), and an LLM job
-- (task p_task) is taken only when its model has room (llmjobs_take_capacity); when it has
-- none, the job stays waiting, untouched, and the fetch looks past that model's jobs. So a
-- job waiting for its model's limit holds no worker slot and spends no attempt, other models'
-- jobs go ahead of it, and within a model the order of priorities holds.
DROP FUNCTION llmjobs_fetch_jobs(character varying[], bigint, integer);
CREATE FUNCTION llmjobs_fetch_jobs(
    target_queue_names character varying[],
    p_worker_id bigint,
    p_count integer,
    p_task text DEFAULT NULL,
    p_minute double precision DEFAULT 60,
    p_stalled double precision DEFAULT 30
)
    RETURNS SETOF procrastinate_jobs
    LANGUAGE plpgsql
AS $$
DECLARE
    found_job procrastinate_jobs;
    candidate procrastinate_jobs;
    sorting text := current_setting('enable_sort');
    queues character varying[] := target_queue_names;
    blocked text[];
    taken integer := 0;
    picked record;
BEGIN
    IF EXISTS (SELECT 1 FROM llmjobs_paused_queues) THEN
        IF queues IS NULL THEN
            queues := ARRAY(
                WITH RECURSIVE names(name) AS (
                    SELECT min(queue_name) FROM procrastinate_jobs
                    UNION ALL
                    SELECT (SELECT min(queue_name) FROM procrastinate_jobs
                             WHERE queue_name > names.name)
                      FROM names
                     WHERE names.name IS NOT NULL
                )
                SELECT name FROM names WHERE name IS NOT NULL
                EXCEPT
                SELECT queue_name FROM llmjobs_paused_queues
            );
        ELSE
            queues := ARRAY(
                SELECT unnest(queues)
                EXCEPT
                SELECT queue_name FROM llmjobs_paused_queues
            );
        END IF;
        IF cardinality(queues) = 0 THEN
            RETURN;
        END IF;
    ELSIF queues IS NULL THEN
        PERFORM set_config('enable_sort', 'off', true);
    END IF;
    IF p_task IS NULL OR (
        NOT EXISTS (SELECT 1 FROM llmjobs_model_limits)
        AND NOT EXISTS (SELECT 1 FROM llmjobs_model_buckets
                         WHERE paused_until > clock_timestamp())
    ) THEN
        FOR i IN 1 .. p_count LOOP
            found_job := procrastinate_fetch_job_v2(queues, p_worker_id);
            EXIT WHEN found_job.id IS NULL;
            RETURN NEXT found_job;
        END LOOP;
        PERFORM set_config('enable_sort', sorting, true);
        RETURN;
    END IF;
    blocked := ARRAY(SELECT model FROM llmjobs_model_buckets
                      WHERE paused_until > clock_timestamp());
    WHILE taken < p_count LOOP
        -- procrastinate_fetch_job_v2's choice (procrastinate 3.10), past the blocked models
        SELECT jobs.* INTO candidate
          FROM procrastinate_jobs AS jobs
         WHERE NOT EXISTS (
                   SELECT 1
                     FROM procrastinate_jobs AS other_jobs
                    WHERE jobs.lock IS NOT NULL
                      AND other_jobs.lock = jobs.lock
                      AND (other_jobs.status = 'doing'
                           OR (other_jobs.status = 'todo'
                               AND (other_jobs.priority > jobs.priority
                                    OR (other_jobs.priority = jobs.priority
                                        AND other_jobs.id < jobs.id)))))
           AND jobs.status = 'todo'
           AND (queues IS NULL OR jobs.queue_name = ANY(queues))
           AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
           AND (cardinality(blocked) = 0 OR jobs.task_name <> p_task OR NOT EXISTS (
                   SELECT 1 FROM llm_outputs AS o
                    WHERE o.id = llmjobs_output_id(jobs.args) AND o.model = ANY(blocked)))
         ORDER BY jobs.priority DESC, jobs.id ASC
         LIMIT 1
           FOR UPDATE OF jobs SKIP LOCKED;
        EXIT WHEN NOT FOUND;
        IF candidate.task_name = p_task THEN
            SELECT o.model,
                   ceil((length(o.template) + length(o.context::text)
                         + coalesce(length(o.system_prompt), 0) + 100) / 4.0)::integer AS tokens
              INTO picked
              FROM llm_outputs AS o
             WHERE o.id = llmjobs_output_id(candidate.args);
            IF FOUND AND NOT llmjobs_take_capacity(
                picked.model, candidate.id, p_worker_id, picked.tokens, p_minute, p_stalled
            ) THEN
                blocked := blocked || picked.model;
                CONTINUE;
            END IF;
        END IF;
        UPDATE procrastinate_jobs
           SET status = 'doing', worker_id = p_worker_id
         WHERE id = candidate.id
        RETURNING * INTO found_job;
        RETURN NEXT found_job;
        taken := taken + 1;
    END LOOP;
    PERFORM set_config('enable_sort', sorting, true);
END;
$$;

-- Why a call to p_model would wait now, or NULL when it would start: 'paused' (a 429),
-- 'concurrent', 'rpm' or 'tpm' (an answer of the model's typical size). Reads only.
CREATE FUNCTION llmjobs_model_blocked(
    p_model text,
    p_minute double precision,
    p_stalled double precision
)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    lim llmjobs_model_limits := llmjobs_model_limit(p_model);
    bucket llmjobs_model_buckets;
    rates record;
    t timestamptz := clock_timestamp();
BEGIN
    SELECT * INTO bucket FROM llmjobs_model_buckets WHERE model = p_model;
    IF bucket.paused_until > t THEN
        RETURN 'paused';
    END IF;
    IF lim.pattern IS NULL THEN
        RETURN NULL;
    END IF;
    IF lim.max_concurrent IS NOT NULL AND (
        SELECT count(*)
          FROM llmjobs_model_calls AS c
          JOIN procrastinate_jobs AS j ON j.id = c.job_id AND j.status = 'doing'
          JOIN procrastinate_workers AS w ON w.id = c.worker_id
         WHERE c.model = p_model AND c.finished_at IS NULL
           AND w.last_heartbeat > t - make_interval(secs => p_stalled)
    ) >= lim.max_concurrent THEN
        RETURN 'concurrent';
    END IF;
    rates := llmjobs_limit_rates(lim, p_minute);
    IF lim.rpm IS NOT NULL AND greatest(0, extract(epoch FROM bucket.requests_empty_at - t))
                               * rates.request_rate + 1 > rates.request_burst + 1e-9 THEN
        RETURN 'rpm';
    END IF;
    IF lim.tpm IS NOT NULL AND extract(epoch FROM bucket.tokens_empty_at - t) > 0
       AND extract(epoch FROM bucket.tokens_empty_at - t) * rates.token_rate
           + coalesce(bucket.typical_completion, 256) > rates.token_burst THEN
        RETURN 'tpm';
    END IF;
    RETURN NULL;
END;
$$;
