-- The queue view over procrastinate's tables (admins): counts, throughput, lists, workers,
-- paused queues and bulk actions. Every list has a LIMIT; every count is an aggregate.

-- queue_snapshot --
-- The first statement of the queue view's read: every query after it sees the same snapshot
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY

-- queue_job_counts --
-- How many jobs each queue holds in each status
SELECT queue_name, status::text AS status, count(*) AS jobs
  FROM procrastinate_jobs
 GROUP BY queue_name, status
 ORDER BY queue_name, status

-- queue_throughput --
-- Jobs queued, succeeded, failed and retried per `unit` (minute or hour) over the last `hours`
-- hours, maintenance jobs left out
SELECT date_trunc(%(unit)s, events.at) AS at,
       CASE events.type WHEN 'deferred' THEN 'queued'
                        WHEN 'deferred_for_retry' THEN 'retried'
                        WHEN 'retried' THEN 'retried'
                        ELSE events.type::text END AS event,
       count(*) AS jobs
  FROM procrastinate_events AS events
 WHERE events.at >= now() - make_interval(hours => %(hours)s)
   AND events.at <= now()
   AND events.type IN ('deferred', 'succeeded', 'failed', 'deferred_for_retry', 'retried')
   AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs AS jobs
                    WHERE jobs.id = events.job_id AND jobs.queue_name = 'maintenance')
 GROUP BY 1, 2
 ORDER BY 1, 2

-- queue_failed_jobs --
-- Failed jobs newest first (keyset page below before_id), with their output's error;
-- maintenance jobs are shown apart
SELECT jobs.id AS job_id, jobs.queue_name, jobs.task_name, jobs.attempts,
       (SELECT max(events.at) FROM procrastinate_events AS events
         WHERE events.job_id = jobs.id AND events.type = 'failed') AS failed_at,
       llm_outputs.id AS output_id, llm_outputs.model, llm_outputs.status AS output_status,
       llm_outputs.error_message, users.name AS user_name
  FROM procrastinate_jobs AS jobs
  LEFT JOIN llm_outputs ON llm_outputs.job_id = jobs.id
  LEFT JOIN users ON users.id = llm_outputs.user_id
 WHERE jobs.status = 'failed' AND jobs.queue_name <> 'maintenance'
   AND (%(before_id)s::bigint IS NULL OR jobs.id < %(before_id)s)
 ORDER BY jobs.id DESC
 LIMIT %(limit)s

-- queue_waiting_jobs --
-- Jobs waiting to run, in the order a worker takes them (at most `limit`); maintenance jobs are
-- shown apart
SELECT jobs.id AS job_id, jobs.queue_name, jobs.task_name, jobs.priority, jobs.attempts,
       jobs.scheduled_at,
       (SELECT min(events.at) FROM procrastinate_events AS events
         WHERE events.job_id = jobs.id AND events.type = 'deferred') AS queued_at,
       llm_outputs.id AS output_id, llm_outputs.model, users.name AS user_name
  FROM procrastinate_jobs AS jobs
  LEFT JOIN llm_outputs ON llm_outputs.job_id = jobs.id
  LEFT JOIN users ON users.id = llm_outputs.user_id
 WHERE jobs.status = 'todo' AND jobs.queue_name <> 'maintenance'
 ORDER BY jobs.priority DESC, jobs.id
 LIMIT %(limit)s

-- queue_busy_jobs --
-- Jobs running now, oldest first (at most `limit`): their worker, since when, and their output
SELECT jobs.id AS job_id, jobs.queue_name, jobs.task_name, jobs.attempts, jobs.worker_id,
       (SELECT max(events.at) FROM procrastinate_events AS events
         WHERE events.job_id = jobs.id AND events.type = 'started') AS started_at,
       llm_outputs.id AS output_id, llm_outputs.model, users.name AS user_name
  FROM procrastinate_jobs AS jobs
  LEFT JOIN llm_outputs ON llm_outputs.job_id = jobs.id
  LEFT JOIN users ON users.id = llm_outputs.user_id
 WHERE jobs.status = 'doing' AND jobs.queue_name <> 'maintenance'
 ORDER BY jobs.id
 LIMIT %(limit)s

-- queue_maintenance --
-- The periodic maintenance jobs per task: how many wait, run, succeeded and failed, and when the
-- latest one last changed
SELECT jobs.task_name,
       count(*) FILTER (WHERE jobs.status = 'todo') AS waiting,
       count(*) FILTER (WHERE jobs.status = 'doing') AS running,
       count(*) FILTER (WHERE jobs.status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE jobs.status = 'failed') AS failed,
       (SELECT max(events.at) FROM procrastinate_events AS events
         WHERE events.job_id = max(jobs.id)) AS last_run_at
  FROM procrastinate_jobs AS jobs
 WHERE jobs.queue_name = 'maintenance'
 GROUP BY jobs.task_name
 ORDER BY jobs.task_name
 LIMIT 100

-- queue_workers --
-- Registered workers with their last heartbeat, running jobs and whether they stalled
SELECT workers.id AS worker_id, workers.last_heartbeat,
       extract(epoch FROM now() - workers.last_heartbeat)::float8 AS seconds_since_heartbeat,
       workers.last_heartbeat < now() - make_interval(secs => %(stalled_after)s) AS stalled,
       (SELECT count(*) FROM procrastinate_jobs AS jobs
         WHERE jobs.worker_id = workers.id AND jobs.status = 'doing') AS running_jobs
  FROM procrastinate_workers AS workers
 ORDER BY workers.id
 LIMIT 100

-- queue_stalled_jobs --
-- Running jobs whose worker is gone or silent for longer than stalled_after seconds (at most
-- `limit`)
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
 LIMIT %(limit)s

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

-- queue_paused --
-- The paused queues, by name
SELECT queue_name, paused_at, paused_by
  FROM llmjobs_paused_queues
 ORDER BY queue_name

-- queue_pause --
-- Pause a queue (nothing when it is paused already): workers take none of its waiting jobs
INSERT INTO llmjobs_paused_queues (queue_name, paused_by)
VALUES (%(queue)s, %(paused_by)s)
ON CONFLICT (queue_name) DO NOTHING
RETURNING queue_name, paused_at, paused_by

-- queue_resume --
-- Resume a paused queue (nothing when it is not paused), and wake its workers as a new job would
WITH resumed AS (
    DELETE FROM llmjobs_paused_queues
     WHERE queue_name = %(queue)s
    RETURNING queue_name
)
SELECT queue_name,
       pg_notify('procrastinate_queue_v1#' || queue_name, '{"type": "job_inserted"}'),
       pg_notify('procrastinate_any_queue_v1', '{"type": "job_inserted"}')
  FROM resumed

-- queue_active_counts --
-- Waiting and running jobs per queue (for the queue listing)
SELECT queue_name,
       count(*) FILTER (WHERE status = 'todo') AS waiting,
       count(*) FILTER (WHERE status = 'doing') AS running
  FROM procrastinate_jobs
 WHERE status IN ('todo', 'doing')
 GROUP BY queue_name

-- queue_bulk_count --
-- How many jobs a bulk action would change now (llmjobs_jobs_by_filter, at most `limit`)
SELECT count(*) AS jobs
  FROM llmjobs_jobs_by_filter(%(status)s::procrastinate_job_status, %(queue)s, %(model)s,
                              %(error)s, make_interval(mins => %(older_than_minutes)s),
                              %(limit)s)

-- queue_bulk_retry --
-- Queue again the failed jobs of a filter (llmjobs_jobs_by_filter, the count's WHERE), their
-- outputs back to pending, in one statement; jobs another transaction holds are left out
WITH picked AS MATERIALIZED (
    SELECT jobs.id, filtered.output_id
      FROM llmjobs_jobs_by_filter('failed', %(queue)s, %(model)s, %(error)s,
                                  make_interval(mins => %(older_than_minutes)s), %(limit)s)
           AS filtered
      JOIN procrastinate_jobs AS jobs ON jobs.id = filtered.job_id AND jobs.status = 'failed'
       FOR UPDATE OF jobs SKIP LOCKED
), outputs AS (
    UPDATE llm_outputs
       SET status = 'pending', completed_at = NULL
     WHERE id IN (SELECT output_id FROM picked) AND status <> 'completed'
    RETURNING id
), retried AS (
    SELECT procrastinate_retry_job_v2(picked.id, now(), NULL, NULL, NULL) FROM picked
)
SELECT (SELECT count(*) FROM retried) AS jobs, (SELECT count(*) FROM outputs) AS outputs

-- queue_bulk_cancel --
-- Cancel the waiting jobs of a filter (llmjobs_jobs_by_filter, the count's WHERE), their
-- outputs failed with error_message, in one statement; jobs a worker is taking are left out
WITH picked AS MATERIALIZED (
    SELECT jobs.id
      FROM llmjobs_jobs_by_filter('todo', %(queue)s, %(model)s, %(error)s,
                                  make_interval(mins => %(older_than_minutes)s), %(limit)s)
           AS filtered
      JOIN procrastinate_jobs AS jobs ON jobs.id = filtered.job_id AND jobs.status = 'todo'
       FOR UPDATE OF jobs SKIP LOCKED
), cancelled AS MATERIALIZED (
    SELECT procrastinate_cancel_job_v1(picked.id, false, false) AS id FROM picked
), outputs AS (
    UPDATE llm_outputs
       SET status = 'failed', error_message = %(error_message)s, completed_at = now()
     WHERE job_id IN (SELECT id FROM cancelled WHERE id IS NOT NULL)
       AND status IN ('pending', 'processing')
    RETURNING id
)
SELECT (SELECT count(*) FROM cancelled WHERE id IS NOT NULL) AS jobs,
       (SELECT count(*) FROM outputs) AS outputs
