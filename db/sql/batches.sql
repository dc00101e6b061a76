-- Batches, the response cache, and exports.

-- insert_batch --
-- A batch of jobs (with the JSON Schema of all its rows, if any)
INSERT INTO batches (user_id, name, template, model, format, queue, columns, skipped, json_schema)
VALUES (%(user_id)s, %(name)s, %(template)s, %(model)s, %(format)s, %(queue)s, %(columns)s,
        %(skipped)s, %(json_schema)s)
RETURNING *

-- set_batch_rows --
-- Attach outputs to their batch, with their row numbers in the file
UPDATE llm_outputs SET batch_id = %(batch_id)s, batch_row = rows.n
  FROM unnest(%(ids)s::bigint[], %(rows)s::integer[]) AS rows(id, n)
 WHERE llm_outputs.id = rows.id

-- set_use_cache --
-- Let outputs reuse a cached answer
UPDATE llm_outputs SET use_cache = true WHERE id = ANY(%(ids)s)

-- get_batch --
-- One batch with its progress; when viewer_id is given, only if that user owns it. Cancelled
-- rows (llm_output_outcome, migration 0014) are counted apart from the failures
SELECT b.*,
       count(o.id) AS total,
       count(o.id) FILTER (WHERE o.status = 'completed') AS completed,
       count(o.id) FILTER (WHERE llm_output_outcome(o.status, o.error_message) = 'failed')
           AS failed,
       count(o.id) FILTER (WHERE llm_output_outcome(o.status, o.error_message) = 'cancelled')
           AS cancelled,
       count(o.id) FILTER (WHERE o.status IN ('pending', 'processing')) AS unfinished,
       COALESCE(sum(o.cost), 0) AS cost
  FROM batches AS b LEFT JOIN llm_outputs AS o ON o.batch_id = b.id
 WHERE b.id = %(id)s AND (%(viewer_id)s::bigint IS NULL OR b.user_id = %(viewer_id)s)
 GROUP BY b.id

-- list_batches --
-- A user's batches (all users' when user_id is NULL), newest first, with their progress
SELECT b.*,
       count(o.id) AS total,
       count(o.id) FILTER (WHERE o.status = 'completed') AS completed,
       count(o.id) FILTER (WHERE llm_output_outcome(o.status, o.error_message) = 'failed')
           AS failed,
       count(o.id) FILTER (WHERE llm_output_outcome(o.status, o.error_message) = 'cancelled')
           AS cancelled,
       count(o.id) FILTER (WHERE o.status IN ('pending', 'processing')) AS unfinished,
       COALESCE(sum(o.cost), 0) AS cost
  FROM batches AS b LEFT JOIN llm_outputs AS o ON o.batch_id = b.id
 WHERE (%(user_id)s::bigint IS NULL OR b.user_id = %(user_id)s)
 GROUP BY b.id
 ORDER BY b.id DESC
 LIMIT %(limit)s

-- batch_results --
-- A batch's outputs in file order (a page of rows after after_row)
SELECT id, batch_row, context, status, parsed_output, raw_response, error_message, feedback,
       cost, latency_ms, cache_hit_of
  FROM llm_outputs
 WHERE batch_id = %(batch_id)s AND batch_row > %(after_row)s
 ORDER BY batch_row
 LIMIT %(limit)s

-- cancel_batch_jobs --
-- Cancel a batch's jobs that have not started, failing their outputs; returns the outputs failed
WITH waiting AS (
    SELECT o.id, procrastinate_cancel_job_v1(o.job_id, false, false) AS cancelled
      FROM llm_outputs AS o JOIN procrastinate_jobs AS j ON j.id = o.job_id
     WHERE o.batch_id = %(batch_id)s AND j.status = 'todo'
), failed AS (
    UPDATE llm_outputs SET status = 'failed', error_message = %(message)s, completed_at = now()
     WHERE id IN (SELECT id FROM waiting WHERE cancelled IS NOT NULL) AND status = 'pending'
    RETURNING id
), marked AS (
    UPDATE batches SET cancelled_at = COALESCE(cancelled_at, now()) WHERE id = %(batch_id)s
)
SELECT id FROM failed

-- batch_failed_outputs --
-- A batch's failed outputs, cancelled ones included (said apart), locked until the end of the
-- transaction (before queueing them again)
SELECT id, queue, priority, llm_output_outcome(status, error_message) = 'cancelled' AS cancelled
  FROM llm_outputs
 WHERE batch_id = %(batch_id)s AND status = 'failed'
 ORDER BY batch_row
   FOR UPDATE

-- requeue_outputs --
-- Put outputs back to pending for a fresh run of attempts
UPDATE llm_outputs
   SET status = 'pending', attempts = 0, error_message = NULL, started_at = NULL,
       completed_at = NULL
 WHERE id = ANY(%(ids)s)

-- clear_batch_cancelled --
-- A batch runs again
UPDATE batches SET cancelled_at = NULL WHERE id = %(batch_id)s

-- find_cached_answer --
-- The newest completed answer to the same question by the same user within the window (never
-- itself a copy): users see only their own outputs, cached ones included
SELECT id, raw_response, parsed_output, prompt_tokens, completion_tokens
  FROM llm_outputs
 WHERE cache_key = %(cache_key)s AND status = 'completed' AND cache_hit_of IS NULL
   AND user_id = %(user_id)s
   AND completed_at >= now() - make_interval(secs => %(window_seconds)s)
   AND id <> %(id)s
 ORDER BY completed_at DESC
 LIMIT 1

-- complete_from_cache --
-- Complete an output with a cached answer: no model call, no cost
UPDATE llm_outputs
   SET status = 'completed', prompt = %(prompt)s, raw_response = %(raw_response)s,
       parsed_output = %(parsed_output)s, prompt_tokens = 0, completion_tokens = 0, cost = 0,
       latency_ms = %(latency_ms)s, cache_key = %(cache_key)s, cache_hit_of = %(cache_hit_of)s,
       error_message = NULL, completed_at = now(),
       -- the same key: the same schema, which the cached answer validated against at once
       schema_valid = CASE WHEN json_schema IS NOT NULL THEN true END,
       schema_first_try = CASE WHEN json_schema IS NOT NULL THEN true END
 WHERE id = %(id)s AND attempts = %(attempt)s AND status = 'processing'
RETURNING id

-- export_outputs --
-- Completed outputs for a dataset: what was asked and answered, and how it was judged: the
-- feedback with its reasons, comment and corrected answer, and the verdicts of the judges whose
-- answer is in (pass or fail: judge_outcomes), by judge name. With `or_corrected`, an output with
-- a corrected answer is kept whatever its feedback. The answers of a blind comparison not yet
-- judged are left out until the pick (their models are not to be seen before it)
SELECT o.id, o.model, o.format, o.template, o.prompt, o.system_prompt, o.context,
       o.raw_response, o.parsed_output, o.feedback, o.created_at, o.user_id,
       o.feedback_reasons, o.feedback_comment, o.corrected_answer,
       v.version AS template_version, t.name AS template_name,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'judge', j.name, 'verdict', jo.outcome, 'reason', jo.reason)
                    ORDER BY j.name), '[]'::jsonb)
          FROM judge_outcomes AS jo
          JOIN judges AS j ON j.id = jo.judge_id
         WHERE jo.output_id = o.id AND jo.outcome IN ('pass', 'fail')) AS judge_verdicts
  FROM llm_outputs AS o
  LEFT JOIN prompt_template_versions AS v ON v.id = o.template_version_id
  LEFT JOIN prompt_templates AS t ON t.id = v.template_id
 WHERE o.status = 'completed'
   AND (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
   AND (%(model)s::text IS NULL OR o.model = %(model)s)
   AND (%(format)s::text IS NULL OR o.format = %(format)s)
   AND (%(feedback)s::text IS NULL OR o.feedback = %(feedback)s
        OR (%(or_corrected)s AND o.corrected_answer IS NOT NULL))
   AND (%(template)s::text IS NULL
        OR (md5(o.template) = md5(%(template)s) AND o.template = %(template)s))
   AND (%(created_after)s::timestamptz IS NULL OR o.created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR o.created_at < %(created_before)s)
   AND NOT (o.comparison_id IS NOT NULL AND EXISTS (
           SELECT 1 FROM comparisons AS c
            WHERE c.id = o.comparison_id AND c.blind
              AND NOT EXISTS (SELECT 1 FROM preferences AS p WHERE p.comparison_id = c.id)))
   AND o.id > %(after_id)s
 ORDER BY o.id
 LIMIT %(limit)s

-- cache_hit_rate --
-- Completed outputs that asked for the cache, and how many were answered from it
SELECT count(*) FILTER (WHERE use_cache) AS eligible,
       count(*) FILTER (WHERE cache_hit_of IS NOT NULL) AS hits
  FROM llm_outputs
 WHERE status = 'completed'
   AND (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
   AND (%(model)s::text IS NULL OR model = %(model)s)
   AND (%(template)s::text IS NULL
        OR (md5(template) = md5(%(template)s) AND template = %(template)s))
   AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
