-- The dashboard's queries: analytics over outputs and feedback, and the queue view over
-- procrastinate's tables. Every analytics query takes the same filters: user_id, model, template
-- (each NULL for all) and created_after / created_before (a half-open range, NULL for open).

-- analytics_by_model --
-- Per model: volume, outcome, feedback, latency percentiles and cost
SELECT model,
       count(*) AS outputs,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status IN ('completed', 'failed')) AS finished,
       count(*) FILTER (WHERE feedback = 'thumbs_up') AS thumbs_up,
       count(*) FILTER (WHERE feedback = 'thumbs_down') AS thumbs_down,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
           FILTER (WHERE status = 'completed') AS latency_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
           FILTER (WHERE status = 'completed') AS latency_p95_ms,
       sum(cost) AS cost,
       sum(cost) / NULLIF(count(*) FILTER (WHERE feedback = 'thumbs_up'), 0) AS cost_per_thumbs_up
  FROM llm_outputs
 WHERE (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
   AND (%(model)s::text IS NULL OR model = %(model)s)
   AND (%(template)s::text IS NULL
        OR (md5(template) = md5(%(template)s) AND template = %(template)s))
   AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
 GROUP BY model
 ORDER BY model

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
-- Per time bucket (hour or day, UTC) and status: how many outputs were created
SELECT date_trunc(%(bucket)s, created_at, 'UTC') AS bucket, status, count(*) AS outputs
  FROM llm_outputs
 WHERE (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
   AND (%(model)s::text IS NULL OR model = %(model)s)
   AND (%(template)s::text IS NULL
        OR (md5(template) = md5(%(template)s) AND template = %(template)s))
   AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
 GROUP BY 1, 2
 ORDER BY 1, 2

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

-- analytics_feedback_export --
-- Rated outputs (thumbs up or down) with what was rated, newest first, at most `limit`
SELECT llm_outputs.id AS output_id, llm_outputs.created_at, users.name AS user_name,
       llm_outputs.model, llm_outputs.format, llm_outputs.feedback,
       (SELECT max(feedback_events.created_at) FROM feedback_events
         WHERE feedback_events.output_id = llm_outputs.id) AS feedback_at,
       llm_outputs.latency_ms, llm_outputs.cost, llm_outputs.template
  FROM llm_outputs JOIN users ON users.id = llm_outputs.user_id
 WHERE llm_outputs.feedback <> 'none'
   AND (%(user_id)s::bigint IS NULL OR llm_outputs.user_id = %(user_id)s)
   AND (%(model)s::text IS NULL OR llm_outputs.model = %(model)s)
   AND (%(template)s::text IS NULL
        OR (md5(llm_outputs.template) = md5(%(template)s) AND llm_outputs.template = %(template)s))
   AND (%(created_after)s::timestamptz IS NULL OR llm_outputs.created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR llm_outputs.created_at < %(created_before)s)
 ORDER BY llm_outputs.id DESC
 LIMIT %(limit)s

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
-- The models one user has outputs from, by name
SELECT DISTINCT model FROM llm_outputs WHERE user_id = %(user_id)s ORDER BY model

-- analytics_templates_used --
-- The templates most recently used among the latest `scan` outputs of a user (or everyone),
-- at most `limit`: a bounded read however long the history
SELECT template, count(*) AS outputs, max(created_at) AS last_used_at
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

-- queue_job_counts --
-- How many jobs each queue holds in each status
SELECT queue_name, status::text AS status, count(*) AS jobs
  FROM procrastinate_jobs
 GROUP BY queue_name, status
 ORDER BY queue_name, status

-- queue_throughput --
-- Jobs queued, succeeded and failed per hour over the last `hours` hours
SELECT date_trunc('hour', at) AS hour, type::text AS event, count(*) AS jobs
  FROM procrastinate_events
 WHERE at >= now() - make_interval(hours => %(hours)s)
   AND at <= now()
   AND type IN ('deferred', 'succeeded', 'failed')
 GROUP BY 1, 2
 ORDER BY 1, 2

-- queue_failed_jobs --
-- Failed jobs newest first (keyset page below before_id), with their output's error
SELECT jobs.id AS job_id, jobs.queue_name, jobs.task_name, jobs.attempts,
       (SELECT max(events.at) FROM procrastinate_events AS events
         WHERE events.job_id = jobs.id AND events.type = 'failed') AS failed_at,
       llm_outputs.id AS output_id, llm_outputs.model, llm_outputs.status AS output_status,
       llm_outputs.error_message, users.name AS user_name
  FROM procrastinate_jobs AS jobs
  LEFT JOIN llm_outputs ON llm_outputs.job_id = jobs.id
  LEFT JOIN users ON users.id = llm_outputs.user_id
 WHERE jobs.status = 'failed'
   AND (%(before_id)s::bigint IS NULL OR jobs.id < %(before_id)s)
 ORDER BY jobs.id DESC
 LIMIT %(limit)s

-- queue_waiting_jobs --
-- Jobs waiting to run, in the order a worker takes them (at most `limit`)
SELECT jobs.id AS job_id, jobs.queue_name, jobs.task_name, jobs.priority, jobs.attempts,
       jobs.scheduled_at,
       (SELECT min(events.at) FROM procrastinate_events AS events
         WHERE events.job_id = jobs.id AND events.type = 'deferred') AS queued_at,
       llm_outputs.id AS output_id, llm_outputs.model, users.name AS user_name
  FROM procrastinate_jobs AS jobs
  LEFT JOIN llm_outputs ON llm_outputs.job_id = jobs.id
  LEFT JOIN users ON users.id = llm_outputs.user_id
 WHERE jobs.status = 'todo'
 ORDER BY jobs.priority DESC, jobs.id
 LIMIT %(limit)s

-- queue_workers --
-- Registered workers with their last heartbeat, running jobs and whether they stalled
SELECT workers.id AS worker_id, workers.last_heartbeat,
       extract(epoch FROM now() - workers.last_heartbeat)::float8 AS seconds_since_heartbeat,
       workers.last_heartbeat < now() - make_interval(secs => %(stalled_after)s) AS stalled,
       (SELECT count(*) FROM procrastinate_jobs AS jobs
         WHERE jobs.worker_id = workers.id AND jobs.status = 'doing') AS running_jobs
  FROM procrastinate_workers AS workers
 ORDER BY workers.id

-- queue_stalled_jobs --
-- Running jobs whose worker is gone or silent for longer than stalled_after seconds
SELECT jobs.id AS job_id, jobs.queue_name, jobs.task_name, jobs.attempts, jobs.worker_id,
       workers.last_heartbeat,
       (SELECT max(events.at) FROM procrastinate_events AS events
         WHERE events.job_id = jobs.id AND events.type = 'started') AS started_at,
       llm_outputs.id AS output_id, users.name AS user_name
  FROM procrastinate_jobs AS jobs
  LEFT JOIN procrastinate_workers AS workers ON workers.id = jobs.worker_id
  LEFT JOIN llm_outputs ON llm_outputs.job_id = jobs.id
  LEFT JOIN users ON users.id = llm_outputs.user_id
 WHERE jobs.status = 'doing'
   AND (workers.id IS NULL
        OR workers.last_heartbeat < now() - make_interval(secs => %(stalled_after)s))
 ORDER BY jobs.id

-- queue_lock_job --
-- One job's status, locked until the end of the transaction (before retrying or cancelling it)
SELECT id, status::text AS status, queue_name, task_name
  FROM procrastinate_jobs
 WHERE id = %(job_id)s
   FOR UPDATE

-- queue_requeue_output --
-- Put the output of a job being retried back to pending (its last error is kept)
UPDATE llm_outputs
   SET status = 'pending', completed_at = NULL
 WHERE job_id = %(job_id)s AND status <> 'completed'
RETURNING id

-- queue_cancel_output --
-- Fail the output of a job cancelled before it ran, saying who cancelled it
UPDATE llm_outputs
   SET status = 'failed', error_message = %(error_message)s, completed_at = now()
 WHERE job_id = %(job_id)s AND status IN ('pending', 'processing')
RETURNING id
