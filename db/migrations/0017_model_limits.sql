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

-- A model's buckets, as leaky buckets: what each held (requests, tokens) at `at`; they drain at
-- the rates of the model's limit (llmjobs_limit_rates), so a changed limit applies to what they
-- hold at once. `paused_until`: a provider's 429 stops every worker's calls to the model until
-- then. `typical_completion`, `typical_call`: the tokens of the model's recent answers and calls
-- (moving averages): the answer's part of the estimate of a call's tokens, and the size of the
-- token bucket's burst.
CREATE TABLE llmjobs_model_buckets (
    model text PRIMARY KEY,
    requests double precision NOT NULL DEFAULT 0,
    tokens double precision NOT NULL DEFAULT 0,
    at timestamptz NOT NULL DEFAULT now(),
    paused_until timestamptz,
    typical_completion integer,
    typical_call integer
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

-- The limit a model takes: its exact one, else the longest prefix of its name. The prefixes of
-- one name are prefixes of one another: the longest is the greatest. (No ORDER BY: the fetch
-- runs with sorts off, and a sort's cost would then start the JIT compiler at every call.)
CREATE FUNCTION llmjobs_model_limit(p_model text)
    RETURNS llmjobs_model_limits
    LANGUAGE sql
    STABLE
AS $$
    SELECT *
      FROM llmjobs_model_limits
     WHERE pattern = coalesce(
               (SELECT pattern FROM llmjobs_model_limits WHERE pattern = p_model),
               (SELECT max(pattern) FROM llmjobs_model_limits
                 WHERE right(pattern, 1) = '/' AND starts_with(p_model, pattern))
           )
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
-- minute and a second (calls reach the provider a little after they start, the first call of a
-- worker later than the others). A bucket of `burst` units drains at a rate that keeps any
-- window at or under the limit: the burst plus what drains in the window. The request bucket holds 2 seconds' worth (at least one request);
-- the token bucket as much, or the model's typical call (p_typical_call tokens, at most half
-- the limit) when that is more: a call up to the burst starts when it fits, a larger one when
-- the bucket is empty (a window may then hold what that call has beyond the burst).
CREATE FUNCTION llmjobs_limit_rates(
    p_limit llmjobs_model_limits,
    p_minute double precision,
    p_typical_call double precision,
    OUT request_burst double precision,
    OUT request_rate double precision,
    OUT token_burst double precision,
    OUT token_rate double precision
)
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT b.rb,
           (p_limit.rpm - b.rb + 1) / (p_minute + 1) / 1.001,
           b.tb,
           greatest(p_limit.tpm - b.tb, p_limit.tpm * 0.01) / (p_minute + 1) / 1.001
      FROM (SELECT greatest(1, floor(p_limit.rpm / 30.0)) AS rb,
                   greatest(1, p_limit.tpm / 30.0,
                            least(p_typical_call, p_limit.tpm / 2.0)) AS tb) AS b
$$;

-- What a bucket holding p_level at p_since holds at p_now, draining at p_rate a second (no
-- rate: no cap, empty).
CREATE FUNCTION llmjobs_drained(
    p_level double precision,
    p_rate double precision,
    p_since timestamptz,
    p_now timestamptz
)
    RETURNS double precision
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT CASE WHEN p_rate IS NULL THEN 0
                ELSE greatest(0, p_level - greatest(0, extract(epoch FROM p_now - p_since)) * p_rate)
           END
$$;

-- The calls to p_model in flight at p_at: taken, not finished, their job still running on a
-- worker whose heartbeat is fresh (a killed worker's calls stop counting once it is stale), the
-- call of job p_job_id aside (its own earlier attempt).
CREATE FUNCTION llmjobs_calls_in_flight(
    p_model text,
    p_at timestamptz,
    p_stalled double precision,
    p_job_id bigint DEFAULT NULL
)
    RETURNS bigint
    LANGUAGE sql
    STABLE
AS $$
    SELECT count(*)
      FROM llmjobs_model_calls AS c
      JOIN procrastinate_jobs AS j ON j.id = c.job_id AND j.status = 'doing'
      JOIN procrastinate_workers AS w ON w.id = c.worker_id
     WHERE c.model = p_model AND c.finished_at IS NULL
       AND c.job_id IS DISTINCT FROM p_job_id
       AND w.last_heartbeat > p_at - make_interval(secs => p_stalled)
$$;

-- Take capacity for one call of p_model by job p_job_id, estimated at p_tokens tokens besides
-- the answer: 'taken', with the call recorded, when every bucket of its limit has room; 'full',
-- with nothing changed, when one is full, the model is paused, or its calls in flight are at
-- the cap; NULL for a model without limit (nothing recorded: it always has room). The bucket row is
-- locked until the statement ends: two workers taking capacity for one model take turns.
CREATE FUNCTION llmjobs_take_capacity(
    p_model text,
    p_job_id bigint,
    p_worker_id bigint,
    p_tokens integer,
    p_minute double precision,
    p_stalled double precision
)
    RETURNS text
    LANGUAGE plpgsql
AS $$
DECLARE
    lim llmjobs_model_limits := llmjobs_model_limit(p_model);
    bucket llmjobs_model_buckets;
    rates record;
    t timestamptz := clock_timestamp();
    call_tokens integer;
    r_level double precision;
    t_level double precision;
BEGIN
    IF lim.pattern IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO llmjobs_model_buckets (model) VALUES (p_model) ON CONFLICT DO NOTHING;
    SELECT * INTO bucket FROM llmjobs_model_buckets WHERE model = p_model FOR UPDATE;
    -- the time read after waiting for the row: another worker's take may have moved it on
    t := greatest(clock_timestamp(), bucket.at);
    IF bucket.paused_until > t THEN
        RETURN 'full';
    END IF;
    IF lim.max_concurrent IS NOT NULL
       AND llmjobs_calls_in_flight(p_model, t, p_stalled, p_job_id) >= lim.max_concurrent THEN
        RETURN 'full';
    END IF;
    call_tokens := least(p_tokens + coalesce(bucket.typical_completion, 256), 2000000000);
    rates := llmjobs_limit_rates(lim, p_minute, coalesce(bucket.typical_call, call_tokens));
    r_level := llmjobs_drained(bucket.requests, rates.request_rate, bucket.at, t);
    t_level := llmjobs_drained(bucket.tokens, rates.token_rate, bucket.at, t);
    IF lim.rpm IS NOT NULL AND r_level + 1 > rates.request_burst + 1e-9 THEN
        RETURN 'full';
    END IF;
    -- a call larger than the burst waits for an empty bucket
    IF lim.tpm IS NOT NULL AND t_level > 0 AND t_level + call_tokens > rates.token_burst THEN
        RETURN 'full';
    END IF;
    UPDATE llmjobs_model_buckets
       SET requests = CASE WHEN lim.rpm IS NULL THEN 0 ELSE r_level + 1 END,
           tokens = CASE WHEN lim.tpm IS NULL THEN 0 ELSE t_level + call_tokens END,
           at = t
     WHERE model = p_model;
    INSERT INTO llmjobs_model_calls AS c (job_id, model, worker_id, started_at, tokens_estimated)
    VALUES (p_job_id, p_model, p_worker_id, t, call_tokens)
    ON CONFLICT (job_id) DO UPDATE
       SET model = excluded.model, worker_id = excluded.worker_id,
           started_at = excluded.started_at, tokens_estimated = excluded.tokens_estimated,
           tokens_used = NULL, finished_at = NULL;
    RETURN 'taken';
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
    bucket llmjobs_model_buckets;
    rates record;
    t timestamptz := clock_timestamp();
    r_level double precision;
    t_level double precision;
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
    SELECT * INTO bucket FROM llmjobs_model_buckets WHERE model = call.model FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    t := greatest(clock_timestamp(), bucket.at);
    rates := llmjobs_limit_rates(lim, p_minute, coalesce(bucket.typical_call, call.tokens_estimated));
    r_level := llmjobs_drained(bucket.requests, rates.request_rate, bucket.at, t);
    t_level := llmjobs_drained(bucket.tokens, rates.token_rate, bucket.at, t);
    IF lim.rpm IS NOT NULL THEN
        r_level := greatest(0, r_level + coalesce(p_requests, 1) - 1);
    END IF;
    IF lim.tpm IS NOT NULL AND p_tokens IS NOT NULL THEN
        t_level := greatest(0, t_level + p_tokens - call.tokens_estimated);
    END IF;
    UPDATE llmjobs_model_buckets
       SET requests = r_level, tokens = t_level, at = t,
           typical_completion = CASE
               WHEN p_completion IS NULL THEN bucket.typical_completion
               WHEN bucket.typical_completion IS NULL THEN p_completion
               ELSE round(0.8 * bucket.typical_completion + 0.2 * p_completion)
           END,
           typical_call = CASE
               WHEN p_tokens IS NULL THEN bucket.typical_call
               WHEN bucket.typical_call IS NULL THEN p_tokens
               ELSE round(0.8 * bucket.typical_call + 0.2 * p_tokens)
           END
     WHERE model = call.model;
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
-- jobs go ahead of it, and within a model the order of priorities holds. `limited` names the
-- model whose capacity a job took (it gives it back when its call ends), else NULL.
DROP FUNCTION llmjobs_fetch_jobs(character varying[], bigint, integer);
CREATE FUNCTION llmjobs_fetch_jobs(
    target_queue_names character varying[],
    p_worker_id bigint,
    p_count integer,
    p_task text DEFAULT NULL,
    p_minute double precision DEFAULT 60,
    p_stalled double precision DEFAULT 30
)
    RETURNS TABLE (job procrastinate_jobs, limited text)
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
    capacity text;
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
            job := found_job;
            limited := NULL;
            RETURN NEXT;
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
        limited := NULL;
        IF candidate.task_name = p_task THEN
            SELECT o.model,
                   ceil((length(o.template) + length(o.context::text)
                         + coalesce(length(o.system_prompt), 0) + 100) / 4.0)::integer AS tokens
              INTO picked
              FROM llm_outputs AS o
             WHERE o.id = llmjobs_output_id(candidate.args);
            IF FOUND THEN
                capacity := llmjobs_take_capacity(
                    picked.model, candidate.id, p_worker_id, picked.tokens, p_minute, p_stalled
                );
                IF capacity = 'full' THEN
                    blocked := blocked || picked.model;
                    CONTINUE;
                END IF;
                IF capacity = 'taken' THEN
                    limited := picked.model;
                END IF;
            END IF;
        END IF;
        UPDATE procrastinate_jobs
           SET status = 'doing', worker_id = p_worker_id
         WHERE id = candidate.id
        RETURNING * INTO found_job;
        job := found_job;
        RETURN NEXT;
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
    IF lim.max_concurrent IS NOT NULL
       AND llmjobs_calls_in_flight(p_model, t, p_stalled) >= lim.max_concurrent THEN
        RETURN 'concurrent';
    END IF;
    rates := llmjobs_limit_rates(lim, p_minute, coalesce(bucket.typical_call, 256));
    IF lim.rpm IS NOT NULL
       AND llmjobs_drained(bucket.requests, rates.request_rate, bucket.at, t) + 1
           > rates.request_burst + 1e-9 THEN
        RETURN 'rpm';
    END IF;
    IF lim.tpm IS NOT NULL
       AND llmjobs_drained(bucket.tokens, rates.token_rate, bucket.at, t) > 0
       AND llmjobs_drained(bucket.tokens, rates.token_rate, bucket.at, t)
           + coalesce(bucket.typical_call, 256) > rates.token_burst THEN
        RETURN 'tpm';
    END IF;
    RETURN NULL;
END;
$$;
