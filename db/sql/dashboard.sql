-- The dashboard's queries: analytics over outputs and feedback, and the queue view over
-- procrastinate's tables. Every analytics query takes the same filters: user_id, model, template
-- (each NULL for all) and created_after / created_before (a half-open range, NULL for open).

-- analytics_by_model --
-- Per model: volume, outcome, feedback, latency percentiles and cost. Cancelled outputs
-- (llm_output_outcome) are counted apart: finished, the failure rate's basis, leaves them out.
-- They are counted over the failed outputs alone, so that the scan of all the outputs reads the
-- covering index, not the table
WITH cancelled AS (
    SELECT model, count(*) AS cancelled
      FROM llm_outputs
     WHERE (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
       AND (%(model)s::text IS NULL OR model = %(model)s)
       AND (%(template)s::text IS NULL
            OR (md5(template) = md5(%(template)s) AND template = %(template)s))
       AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
       AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
       AND status = 'failed' AND llm_output_outcome(status, error_message) = 'cancelled'
     GROUP BY model
), counts AS (
    SELECT model,
           count(*) AS outputs,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed_or_cancelled,
           count(*) FILTER (WHERE feedback = 'thumbs_up') AS thumbs_up,
           count(*) FILTER (WHERE feedback = 'thumbs_down') AS thumbs_down,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
               FILTER (WHERE status = 'completed') AS latency_p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
               FILTER (WHERE status = 'completed') AS latency_p95_ms,
           sum(cost) AS cost
      FROM llm_outputs
     WHERE (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
       AND (%(model)s::text IS NULL OR model = %(model)s)
       AND (%(template)s::text IS NULL
            OR (md5(template) = md5(%(template)s) AND template = %(template)s))
       AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
       AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
     GROUP BY model
)
SELECT c.model, c.outputs, c.completed,
       c.failed_or_cancelled - COALESCE(x.cancelled, 0) AS failed,
       COALESCE(x.cancelled, 0) AS cancelled,
       c.completed + c.failed_or_cancelled - COALESCE(x.cancelled, 0) AS finished,
       c.thumbs_up, c.thumbs_down, c.latency_p50_ms, c.latency_p95_ms, c.cost,
       c.cost / NULLIF(c.thumbs_up, 0) AS cost_per_thumbs_up
  FROM counts AS c LEFT JOIN cancelled AS x ON x.model = c.model
 ORDER BY c.model

-- analytics_feedback_over_time --
-- Per time bucket (hour or day, UTC) and model: rated outputs, thumbs up, thumbs-up rate
SELECT date_trunc(%(bucket)s, created_at, 'UTC') AS bucket,
       model,
       count(*) FILTER (WHERE feedback <> 'none') AS rated,
       count(*) FILTER (WHERE feedback = 'thumbs_up') AS thumbs_up,
       count(*) FILTER (WHERE feedback = 'thumbs_up')::float8
           / NULLIF(count(*) FILTER (WHERE feedback <> 'none'), 0) AS thumbs_up_rate
  FROM llm_outputs
 WHERE (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
   AND (%(model)s::text IS NULL OR model = %(model)s)
   AND (%(template)s::text IS NULL
        OR (md5(template) = md5(%(template)s) AND template = %(template)s))
   AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
 GROUP BY 1, 2
HAVING count(*) FILTER (WHERE feedback <> 'none') > 0
 ORDER BY 1, 2

-- analytics_volume_over_time --
-- Per time bucket (hour or day, UTC) and status, cancelled apart (llm_output_outcome; counted
-- over the failed outputs alone, as in analytics_by_model): how many outputs were created
SELECT bucket, status, sum(outputs)::bigint AS outputs
  FROM (SELECT date_trunc(%(bucket)s, created_at, 'UTC') AS bucket, status, count(*) AS outputs
          FROM llm_outputs
         WHERE (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
           AND (%(model)s::text IS NULL OR model = %(model)s)
           AND (%(template)s::text IS NULL
                OR (md5(template) = md5(%(template)s) AND template = %(template)s))
           AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
           AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
         GROUP BY 1, 2
        UNION ALL
        -- each cancelled output moves from failed to cancelled
        SELECT x.bucket, s.status, s.outputs
          FROM (SELECT date_trunc(%(bucket)s, created_at, 'UTC') AS bucket, count(*) AS n
                  FROM llm_outputs
                 WHERE (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
                   AND (%(model)s::text IS NULL OR model = %(model)s)
                   AND (%(template)s::text IS NULL
                        OR (md5(template) = md5(%(template)s) AND template = %(template)s))
                   AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
                   AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
                   AND status = 'failed'
                   AND llm_output_outcome(status, error_message) = 'cancelled'
                 GROUP BY 1) AS x
         CROSS JOIN LATERAL (VALUES ('failed', -x.n), ('cancelled', x.n)) AS s(status, outputs)
       ) AS parts
 GROUP BY bucket, status
HAVING sum(outputs) > 0
 ORDER BY bucket, status

-- analytics_by_template --
-- The templates with the most rated outputs: volume and feedback of each (top `limit`); a
-- library template's version is named "name vN" (each version has its own text)
SELECT COALESCE(max(t.name || ' v' || v.version), left(o.template, 80)) AS label,
       md5(o.template) AS template_md5,
       count(*) AS outputs,
       count(*) FILTER (WHERE o.feedback = 'thumbs_up') AS thumbs_up,
       count(*) FILTER (WHERE o.feedback = 'thumbs_down') AS thumbs_down
  FROM llm_outputs AS o
  LEFT JOIN prompt_template_versions AS v ON v.id = o.template_version_id
  LEFT JOIN prompt_templates AS t ON t.id = v.template_id
 WHERE (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
   AND (%(model)s::text IS NULL OR o.model = %(model)s)
   AND (%(template)s::text IS NULL
        OR (md5(o.template) = md5(%(template)s) AND o.template = %(template)s))
   AND (%(created_after)s::timestamptz IS NULL OR o.created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR o.created_at < %(created_before)s)
 GROUP BY o.template
 ORDER BY count(*) FILTER (WHERE o.feedback <> 'none') DESC, count(*) DESC, md5(o.template)
 LIMIT %(limit)s

-- analytics_schema_validity --
-- Per model, over the outputs with a JSON Schema whose answer was judged against it (completed,
-- or failed because no answer validated): how many, how many validated, and how many at the
-- first try
SELECT model,
       count(*) AS judged,
       count(*) FILTER (WHERE schema_valid) AS valid,
       count(*) FILTER (WHERE schema_first_try) AS first_try
  FROM llm_outputs
 WHERE json_schema IS NOT NULL AND schema_valid IS NOT NULL
   AND (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
   AND (%(model)s::text IS NULL OR model = %(model)s)
   AND (%(template)s::text IS NULL
        OR (md5(template) = md5(%(template)s) AND template = %(template)s))
   AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
 GROUP BY model
 ORDER BY model

-- analytics_by_model_rolled_up --
-- analytics_by_model over the rollup's clean periods inside the range and the outputs of the
-- rest of it. Latency percentiles: exact when every latency of the model comes from outputs read
-- directly, else interpolated from the merged histograms (within 9.05 %)
WITH rolled AS (
    SELECT r.model, r.outputs, r.completed, r.failed, r.cancelled, r.thumbs_up, r.thumbs_down,
           r.cost, r.latency_buckets, r.latency_counts
      FROM analytics_rolled_periods(%(created_after)s, %(created_before)s) AS p
      JOIN analytics_rollup AS r ON r.period_start = p.period_start
     WHERE r.user_id = COALESCE(%(user_id)s, 0)
       AND r.template_md5 = COALESCE(md5(%(template)s), '')
       AND r.model <> '' AND (%(model)s::text IS NULL OR r.model = %(model)s)
), recent AS (
    SELECT o.model, o.status, o.feedback, o.cost, o.latency_ms
      FROM analytics_open_outputs(%(created_after)s, %(created_before)s, %(user_id)s, %(model)s,
                                  %(template)s, false) AS o
), counts AS (
    SELECT model, sum(outputs) AS outputs, sum(completed) AS completed, sum(failed) AS failed,
           sum(cancelled) AS cancelled, sum(thumbs_up) AS thumbs_up,
           sum(thumbs_down) AS thumbs_down, sum(cost) AS cost
      FROM (SELECT model, outputs, completed, failed, cancelled, thumbs_up, thumbs_down, cost
              FROM rolled
            UNION ALL
            SELECT model, count(*), count(*) FILTER (WHERE status = 'completed'),
                   count(*) FILTER (WHERE status = 'failed'),
                   count(*) FILTER (WHERE status = 'cancelled'),
                   count(*) FILTER (WHERE feedback = 'thumbs_up'),
                   count(*) FILTER (WHERE feedback = 'thumbs_down'), sum(cost)
              FROM recent GROUP BY model) AS parts
     GROUP BY model
), latency AS (
    SELECT model, bucket, sum(n)::bigint AS n, sum(n) FILTER (WHERE rolled_up)::bigint AS rolled
      FROM (SELECT r.model, unnest(r.latency_buckets) AS bucket, unnest(r.latency_counts) AS n,
                   true AS rolled_up
              FROM rolled AS r
            UNION ALL
            SELECT model, analytics_latency_bucket(latency_ms), count(*), false
              FROM recent WHERE status = 'completed' AND latency_ms IS NOT NULL
             GROUP BY 1, 2) AS parts
     GROUP BY model, bucket
), histograms AS (
    SELECT model, array_agg(bucket ORDER BY bucket) AS buckets,
           array_agg(n ORDER BY bucket) AS counts, sum(rolled) AS rolled
      FROM latency GROUP BY model
), exact AS (
    SELECT model,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
      FROM recent WHERE status = 'completed' AND latency_ms IS NOT NULL
     GROUP BY model
)
SELECT c.model, c.outputs::bigint AS outputs, c.completed::bigint AS completed,
       c.failed::bigint AS failed, c.cancelled::bigint AS cancelled,
       (c.completed + c.failed)::bigint AS finished,
       c.thumbs_up::bigint AS thumbs_up, c.thumbs_down::bigint AS thumbs_down,
       CASE WHEN h.rolled > 0 THEN analytics_latency_percentile(h.buckets, h.counts, 0.5)
            ELSE e.p50 END AS latency_p50_ms,
       CASE WHEN h.rolled > 0 THEN analytics_latency_percentile(h.buckets, h.counts, 0.95)
            ELSE e.p95 END AS latency_p95_ms,
       c.cost, c.cost / NULLIF(c.thumbs_up, 0) AS cost_per_thumbs_up
  FROM counts AS c
  LEFT JOIN histograms AS h ON h.model = c.model
  LEFT JOIN exact AS e ON e.model = c.model
 ORDER BY c.model

-- analytics_feedback_over_time_rolled_up --
-- analytics_feedback_over_time per day, over the rollup and the outputs of the rest of the range
SELECT bucket, model, sum(rated)::bigint AS rated, sum(thumbs_up)::bigint AS thumbs_up,
       sum(thumbs_up)::float8 / sum(rated) AS thumbs_up_rate
  FROM (SELECT date_trunc('day', r.period_start, 'UTC') AS bucket, r.model,
               r.thumbs_up + r.thumbs_down AS rated, r.thumbs_up
          FROM analytics_rolled_periods(%(created_after)s, %(created_before)s) AS p
          JOIN analytics_rollup AS r ON r.period_start = p.period_start
         WHERE r.user_id = COALESCE(%(user_id)s, 0)
           AND r.template_md5 = COALESCE(md5(%(template)s), '')
           AND r.model <> '' AND (%(model)s::text IS NULL OR r.model = %(model)s)
        UNION ALL
        SELECT date_trunc('day', o.created_at, 'UTC'), o.model,
               count(*) FILTER (WHERE o.feedback <> 'none'),
               count(*) FILTER (WHERE o.feedback = 'thumbs_up')
          FROM analytics_open_outputs(%(created_after)s, %(created_before)s, %(user_id)s,
                                      %(model)s, %(template)s, false) AS o
         GROUP BY 1, 2) AS parts
 GROUP BY bucket, model
HAVING sum(rated) > 0
 ORDER BY bucket, model

-- analytics_volume_over_time_rolled_up --
-- analytics_volume_over_time per day, over the rollup and the outputs of the rest of the range
SELECT bucket, status, sum(outputs)::bigint AS outputs
  FROM (SELECT date_trunc('day', r.period_start, 'UTC') AS bucket, s.status, s.outputs
          FROM analytics_rolled_periods(%(created_after)s, %(created_before)s) AS p
          JOIN analytics_rollup AS r ON r.period_start = p.period_start
         CROSS JOIN LATERAL (VALUES ('pending', r.pending), ('processing', r.processing),
                                    ('completed', r.completed), ('failed', r.failed),
                                    ('cancelled', r.cancelled))
               AS s(status, outputs)
         WHERE r.user_id = COALESCE(%(user_id)s, 0)
           AND r.template_md5 = COALESCE(md5(%(template)s), '')
           AND r.model = COALESCE(%(model)s, '')
           AND s.outputs > 0
        UNION ALL
        SELECT date_trunc('day', o.created_at, 'UTC'), o.status, count(*)
          FROM analytics_open_outputs(%(created_after)s, %(created_before)s, %(user_id)s,
                                      %(model)s, %(template)s, false) AS o
         GROUP BY 1, 2) AS parts
 GROUP BY bucket, status
 ORDER BY bucket, status

-- analytics_by_template_rolled_up --
-- analytics_by_template over the rollup and the outputs of the rest of the range
WITH parts AS (
    SELECT r.template_md5, r.template_head, r.template_version_id, r.outputs, r.thumbs_up,
           r.thumbs_down
      FROM analytics_rolled_periods(%(created_after)s, %(created_before)s) AS p
      JOIN analytics_rollup AS r ON r.period_start = p.period_start
     WHERE r.user_id = COALESCE(%(user_id)s, 0)
       AND r.template_md5 <> ''
       AND (%(template)s::text IS NULL OR r.template_md5 = md5(%(template)s))
       AND r.model = COALESCE(%(model)s, '')
    UNION ALL
    SELECT o.template_md5, o.template_head, o.template_version_id, count(*),
           count(*) FILTER (WHERE o.feedback = 'thumbs_up'),
           count(*) FILTER (WHERE o.feedback = 'thumbs_down')
      FROM analytics_open_outputs(%(created_after)s, %(created_before)s, %(user_id)s, %(model)s,
                                  %(template)s, true) AS o
     GROUP BY 1, 2, 3
)
SELECT COALESCE(max(t.name || ' v' || v.version), min(parts.template_head)) AS label,
       parts.template_md5,
       sum(parts.outputs)::bigint AS outputs,
       sum(parts.thumbs_up)::bigint AS thumbs_up,
       sum(parts.thumbs_down)::bigint AS thumbs_down
  FROM parts
  LEFT JOIN prompt_template_versions AS v ON v.id = parts.template_version_id
  LEFT JOIN prompt_templates AS t ON t.id = v.template_id
 GROUP BY parts.template_md5
 ORDER BY sum(parts.thumbs_up + parts.thumbs_down) DESC, sum(parts.outputs) DESC,
          parts.template_md5
 LIMIT %(limit)s

-- analytics_refresh --
-- Roll up the settled periods inside the range (NULL: open) that are missing or stale, newest
-- first, at most max_periods (NULL: all); how many were rolled up (0 when another refresh runs)
SELECT analytics_refresh(%(created_after)s, %(created_before)s, %(max_periods)s) AS periods

-- analytics_feedback_csv_settings --
-- For the CSV's transaction: no JIT compiling (its tens of milliseconds are more than the
-- export's expressions take to run, yet its estimated rows reach the planner's threshold)
SET LOCAL jit = off

-- analytics_feedback_csv --
-- Rated outputs (thumbs up or down) with what was rated, newest first, at most `limit`, as CSV
-- with a header line: the server writes the CSV (COPY), times in UTC as ISO 8601, every text cell
-- through llmjobs_csv_cell (no spreadsheet formulas), numbers as they are. Then the feedback's
-- reasons ("; " between them), comment and corrected answer, and the verdicts of the judges whose
-- answer is in (pass or fail: judge_outcomes) as a JSON array of {judge, verdict, reason}, by
-- judge name, read for the rows written only (a join, not a query per row). The answers of a blind
-- comparison not yet judged are left out until the pick (their models are not to be seen before)
COPY (
WITH rated AS MATERIALIZED (
    SELECT llm_outputs.id, llm_outputs.created_at, users.name AS user_name, llm_outputs.model,
           llm_outputs.format, llm_outputs.feedback, llm_outputs.latency_ms, llm_outputs.cost,
           llm_outputs.template, llm_outputs.feedback_reasons, llm_outputs.feedback_comment,
           llm_outputs.corrected_answer
      FROM llm_outputs JOIN users ON users.id = llm_outputs.user_id
     WHERE llm_outputs.feedback <> 'none'
       AND NOT (llm_outputs.comparison_id IS NOT NULL AND EXISTS (
               SELECT 1 FROM comparisons AS c
                WHERE c.id = llm_outputs.comparison_id AND c.blind
                  AND NOT EXISTS (SELECT 1 FROM preferences AS p WHERE p.comparison_id = c.id)))
       AND (%(user_id)s::bigint IS NULL OR llm_outputs.user_id = %(user_id)s)
       AND (%(model)s::text IS NULL OR llm_outputs.model = %(model)s)
       AND (%(template)s::text IS NULL
            OR (md5(llm_outputs.template) = md5(%(template)s)
                AND llm_outputs.template = %(template)s))
       AND (%(created_after)s::timestamptz IS NULL OR llm_outputs.created_at >= %(created_after)s)
       AND (%(created_before)s::timestamptz IS NULL
            OR llm_outputs.created_at < %(created_before)s)
     ORDER BY llm_outputs.id DESC
     LIMIT %(limit)s
), verdicts AS (
    SELECT jo.output_id,
           jsonb_agg(jsonb_build_object('judge', j.name, 'verdict', jo.outcome,
                                        'reason', jo.reason) ORDER BY j.name)::text AS verdicts
      FROM judge_outcomes AS jo
      JOIN judges AS j ON j.id = jo.judge_id
     WHERE jo.output_id IN (SELECT rated.id FROM rated) AND jo.outcome IN ('pass', 'fail')
     GROUP BY jo.output_id
)
SELECT rated.id AS output_id,
       llmjobs_csv_cell(to_char(rated.created_at AT TIME ZONE 'UTC',
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) AS created_at,
       llmjobs_csv_cell(rated.user_name) AS user_name,
       llmjobs_csv_cell(rated.model) AS model,
       llmjobs_csv_cell(rated.format) AS format,
       llmjobs_csv_cell(rated.feedback) AS feedback,
       llmjobs_csv_cell(to_char((SELECT max(feedback_events.created_at) FROM feedback_events
                                  WHERE feedback_events.output_id = rated.id)
                                AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
           AS feedback_at,
       rated.latency_ms, rated.cost,
       llmjobs_csv_cell(rated.template) AS template,
       llmjobs_csv_cell(array_to_string(rated.feedback_reasons, '; ')) AS reasons,
       llmjobs_csv_cell(rated.feedback_comment) AS comment,
       llmjobs_csv_cell(rated.corrected_answer) AS corrected_answer,
       llmjobs_csv_cell(verdicts.verdicts) AS judge_verdicts
  FROM rated LEFT JOIN verdicts ON verdicts.output_id = rated.id
 ORDER BY rated.id DESC
) TO STDOUT WITH (FORMAT csv, HEADER)

-- analytics_models_used --
-- Every model anyone has outputs from, by name (a skip scan of the model index: one probe per
-- model, however many outputs there are)
WITH RECURSIVE found AS (
    (SELECT model FROM llm_outputs ORDER BY model LIMIT 1)
    UNION ALL
    SELECT (SELECT model FROM llm_outputs WHERE llm_outputs.model > found.model
             ORDER BY model LIMIT 1)
      FROM found
     WHERE found.model IS NOT NULL
)
SELECT model FROM found WHERE model IS NOT NULL

-- analytics_models_used_by --
-- The models one user has outputs from, by name (a skip scan of the user and model index: one
-- probe per model, however many outputs the user has)
WITH RECURSIVE found AS (
    (SELECT model FROM llm_outputs WHERE user_id = %(user_id)s ORDER BY model LIMIT 1)
    UNION ALL
    SELECT (SELECT model FROM llm_outputs
             WHERE llm_outputs.user_id = %(user_id)s AND llm_outputs.model > found.model
             ORDER BY model LIMIT 1)
      FROM found
     WHERE found.model IS NOT NULL
)
SELECT model FROM found WHERE model IS NOT NULL

-- analytics_templates_used --
-- The templates anyone has used, each with its latest output, newest first, at most `limit`: a
-- skip scan of the template index (one probe per template, which finds its latest output too,
-- however many outputs there are), given up after `most` templates (`complete` is false then)
WITH RECURSIVE found AS (
    (SELECT md5(template) AS digest, id, 1 AS n FROM llm_outputs
      ORDER BY md5(template), id DESC LIMIT 1)
    UNION ALL
    SELECT next.digest, next.id, found.n + 1
      FROM found, LATERAL (
               SELECT md5(template) AS digest, id FROM llm_outputs
                WHERE md5(template) > found.digest
                ORDER BY md5(template), id DESC LIMIT 1) AS next
     WHERE found.n <= %(most)s
)
SELECT o.template, o.created_at AS last_used_at,
       (SELECT count(*) FROM found) <= %(most)s AS complete
  FROM found JOIN llm_outputs AS o ON o.id = found.id
 ORDER BY o.id DESC
 LIMIT %(limit)s

-- analytics_templates_used_by --
-- The templates one user has used, each with its latest output, newest first, at most `limit`:
-- a skip scan of the user and template index (one probe per template, which finds its latest
-- output too, however many outputs the user has), given up after `most` templates (`complete`
-- is false then)
WITH RECURSIVE found AS (
    (SELECT md5(template) AS digest, id, 1 AS n FROM llm_outputs
      WHERE user_id = %(user_id)s ORDER BY md5(template), id DESC LIMIT 1)
    UNION ALL
    SELECT next.digest, next.id, found.n + 1
      FROM found, LATERAL (
               SELECT md5(template) AS digest, id FROM llm_outputs
                WHERE user_id = %(user_id)s AND md5(template) > found.digest
                ORDER BY md5(template), id DESC LIMIT 1) AS next
     WHERE found.n <= %(most)s
)
SELECT o.template, o.created_at AS last_used_at,
       (SELECT count(*) FROM found) <= %(most)s AS complete
  FROM found JOIN llm_outputs AS o ON o.id = found.id
 ORDER BY o.id DESC
 LIMIT %(limit)s

-- analytics_templates_used_recently --
-- The templates most recently used among the latest `scan` outputs of a user (or everyone),
-- at most `limit`: a bounded read however long the history (for more templates than a skip scan
-- is worth)
SELECT template, max(created_at) AS last_used_at
  FROM (SELECT template, created_at FROM llm_outputs
         WHERE (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
         ORDER BY created_at DESC, id DESC
         LIMIT %(scan)s) AS recent
 GROUP BY template
 ORDER BY max(created_at) DESC
 LIMIT %(limit)s

-- analytics_set_output_figures --
-- Set an output's usage figures and creation time directly (test data and imports)
UPDATE llm_outputs
   SET latency_ms = %(latency_ms)s, cost = %(cost)s,
       prompt_tokens = COALESCE(%(prompt_tokens)s, prompt_tokens),
       completion_tokens = COALESCE(%(completion_tokens)s, completion_tokens),
       created_at = COALESCE(%(created_at)s, created_at)
 WHERE id = %(id)s
RETURNING id
