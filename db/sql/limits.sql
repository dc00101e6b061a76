-- Provider limits per model (llmjobs_model_limits) and their use: buckets, calls, 429s.

-- limits_list --
-- Every limit, by pattern
SELECT pattern, rpm, tpm, max_concurrent, source, updated_by, updated_at
  FROM llmjobs_model_limits
 ORDER BY pattern

-- limit_set --
-- Set a limit (an admin's: it outranks the environment's for that pattern from now on)
INSERT INTO llmjobs_model_limits AS l (pattern, rpm, tpm, max_concurrent, source, updated_by)
VALUES (%(pattern)s, %(rpm)s, %(tpm)s, %(max_concurrent)s, 'admin', %(updated_by)s)
ON CONFLICT (pattern) DO UPDATE
   SET rpm = excluded.rpm, tpm = excluded.tpm, max_concurrent = excluded.max_concurrent,
       source = 'admin', updated_by = excluded.updated_by, updated_at = now()
RETURNING pattern, rpm, tpm, max_concurrent, source, updated_by, updated_at

-- limit_clear --
-- Remove a limit; the pattern, or nothing when there was none
DELETE FROM llmjobs_model_limits WHERE pattern = %(pattern)s RETURNING pattern

-- limits_from_environment --
-- The limits of a process's environment: each pattern's limit, unless an admin set that pattern
-- (theirs stays); the patterns written
INSERT INTO llmjobs_model_limits AS l (pattern, rpm, tpm, max_concurrent, source, updated_by)
SELECT e.pattern, e.rpm, e.tpm, e.max_concurrent, 'env', 'LLMJOBS_MODEL_LIMITS'
  FROM unnest(%(patterns)s::text[], %(rpms)s::integer[], %(tpms)s::bigint[],
              %(concurrents)s::integer[]) AS e(pattern, rpm, tpm, max_concurrent)
ON CONFLICT (pattern) DO UPDATE
   SET rpm = excluded.rpm, tpm = excluded.tpm, max_concurrent = excluded.max_concurrent,
       updated_at = now()
 WHERE l.source = 'env'
   AND (l.rpm, l.tpm, l.max_concurrent)
       IS DISTINCT FROM (excluded.rpm, excluded.tpm, excluded.max_concurrent)
RETURNING pattern

-- limits_use --
-- Each model under a limit, or paused by a 429, seen in the last hour (calls, 429s) or waiting
-- now, with its limit, its use in the last minute (of %(minute)s seconds), its calls in flight,
-- its outputs waiting to start, its 429s in the last hour, its pause and why it waits now; and
-- each limit no model used yet, once, with no model
WITH models AS (
    SELECT model FROM llmjobs_model_buckets
    UNION
    SELECT model FROM llmjobs_model_calls WHERE started_at > now() - interval '1 hour'
    UNION
    SELECT model FROM llmjobs_rate_limited WHERE at > now() - interval '1 hour'
), waiting AS (
    SELECT o.model, count(*) AS jobs
      FROM llm_outputs AS o
     WHERE o.status = 'pending'
     GROUP BY o.model
), used AS (
    SELECT m.model, lim.*
      FROM (SELECT model FROM models
            UNION
            SELECT model FROM waiting) AS m
     CROSS JOIN LATERAL llmjobs_model_limit(m.model) AS lim
)
SELECT u.model, u.pattern, u.rpm, u.tpm, u.max_concurrent, u.source,
       (SELECT count(*) FROM llmjobs_model_calls AS c
         WHERE c.model = u.model
           AND c.started_at > now() - make_interval(secs => %(minute)s)) AS requests_last_minute,
       (SELECT coalesce(sum(coalesce(c.tokens_used, c.tokens_estimated)), 0)
          FROM llmjobs_model_calls AS c
         WHERE c.model = u.model
           AND c.started_at > now() - make_interval(secs => %(minute)s)) AS tokens_last_minute,
       llmjobs_calls_in_flight(u.model, now(), %(stalled)s) AS in_flight,
       coalesce(w.jobs, 0) AS waiting,
       (SELECT count(*) FROM llmjobs_rate_limited AS r
         WHERE r.model = u.model AND r.at > now() - interval '1 hour') AS rate_limited_last_hour,
       (SELECT b.paused_until FROM llmjobs_model_buckets AS b
         WHERE b.model = u.model AND b.paused_until > now()) AS paused_until,
       llmjobs_model_blocked(u.model, %(minute)s, %(stalled)s) AS blocked
  FROM used AS u
  LEFT JOIN waiting AS w ON w.model = u.model
 WHERE u.pattern IS NOT NULL
    OR EXISTS (SELECT 1 FROM llmjobs_rate_limited AS r
                WHERE r.model = u.model AND r.at > now() - interval '1 hour')
UNION ALL
SELECT NULL, l.pattern, l.rpm, l.tpm, l.max_concurrent, l.source, 0, 0, 0, 0, 0, NULL, NULL
  FROM llmjobs_model_limits AS l
 WHERE NOT EXISTS (SELECT 1 FROM used AS u WHERE u.pattern = l.pattern)
 ORDER BY 2 NULLS LAST, 1 NULLS FIRST
LIMIT 500

-- model_wait --
-- Why calls to %(model)s wait now (see llmjobs_model_blocked), and the limit it takes
SELECT llmjobs_model_blocked(%(model)s, %(minute)s, %(stalled)s) AS blocked,
       lim.pattern, lim.rpm, lim.tpm, lim.max_concurrent,
       (SELECT typical_completion FROM llmjobs_model_buckets WHERE model = %(model)s)
           AS typical_completion,
       (SELECT avg(coalesce(c.tokens_used, c.tokens_estimated))::float8
          FROM llmjobs_model_calls AS c
         WHERE c.model = %(model)s AND c.started_at > now() - interval '1 hour')
           AS tokens_per_call,
       (SELECT paused_until FROM llmjobs_model_buckets
         WHERE model = %(model)s AND paused_until > now()) AS paused_until
  FROM llmjobs_model_limit(%(model)s) AS lim

-- model_pause --
-- A provider's 429 for %(model)s: every worker waits %(seconds)s seconds; the end of the pause
SELECT llmjobs_pause_model(%(model)s, %(seconds)s) AS paused_until

-- release_calls --
-- The end of several limited calls (llmjobs_release_capacity for each)
SELECT llmjobs_release_capacity(r.job_id, r.tokens, r.completion, r.requests, %(minute)s)
  FROM unnest(%(job_ids)s::bigint[], %(tokens)s::integer[], %(completions)s::integer[],
              %(requests)s::integer[]) AS r(job_id, tokens, completion, requests)

-- limits_prune --
-- Calls finished and 429s older than an hour; the rows deleted
WITH calls AS (
    DELETE FROM llmjobs_model_calls
     WHERE started_at < now() - interval '1 hour'
       AND (finished_at IS NOT NULL
            OR NOT EXISTS (SELECT 1 FROM procrastinate_jobs AS j
                            WHERE j.id = llmjobs_model_calls.job_id AND j.status = 'doing'))
    RETURNING 1
), limited AS (
    DELETE FROM llmjobs_rate_limited WHERE at < now() - interval '1 hour' RETURNING 1
), buckets AS (
    DELETE FROM llmjobs_model_buckets AS b
     WHERE coalesce(b.paused_until, 'epoch') < now() - interval '1 hour'
       AND b.at < now() - interval '1 hour'
       AND NOT EXISTS (SELECT 1 FROM llmjobs_model_calls AS c WHERE c.model = b.model)
    RETURNING 1
)
SELECT (SELECT count(*) FROM calls) + (SELECT count(*) FROM limited)
       + (SELECT count(*) FROM buckets) AS deleted

-- batch_waiting --
-- The outputs of batch %(batch_id)s waiting to start (pending: queued, or back for a retry)
SELECT count(*) AS waiting
  FROM llm_outputs
 WHERE batch_id = %(batch_id)s AND status = 'pending'
