-- Every query of LLM Jobs, by name. A header line `-- name --` starts a query, the next comment
-- line says what it does. Parameters are psycopg named placeholders; nothing is ever formatted in.

-- create_migrations_table --
-- Bookkeeping of applied migrations (ours and procrastinate's)
CREATE TABLE IF NOT EXISTS llmjobs_migrations (
    source      text NOT NULL,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, name)
)

-- lock_migrations --
-- Serialise concurrent `migrate` runs
SELECT pg_advisory_xact_lock(7305112001)

-- applied_migrations --
-- Names of the migrations applied from one source
SELECT name FROM llmjobs_migrations WHERE source = %(source)s

-- record_migration --
-- Remember that a migration was applied
INSERT INTO llmjobs_migrations (source, name) VALUES (%(source)s, %(name)s)
ON CONFLICT DO NOTHING

-- procrastinate_installed --
-- Whether procrastinate's schema is present
SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS installed

-- insert_user --
-- Create a user
INSERT INTO users (name, email, role) VALUES (%(name)s, %(email)s, %(role)s)
RETURNING *

-- get_user_by_name --
-- One user by name
SELECT * FROM users WHERE name = %(name)s

-- get_user_by_id --
-- One user by id
SELECT * FROM users WHERE id = %(id)s

-- get_user_by_email --
-- One user by e-mail address (case-insensitive)
SELECT * FROM users WHERE lower(email) = lower(%(email)s)

-- list_users --
-- All users by name
SELECT * FROM users ORDER BY name

-- insert_token --
-- Store the hash of a new API token
INSERT INTO api_tokens (user_id, name, token_hash) VALUES (%(user_id)s, %(name)s, %(token_hash)s)
RETURNING *

-- use_token --
-- The user behind a live token, recording its use (at most once a minute: most requests write
-- nothing)
WITH token AS (
    SELECT id, user_id, last_used_at FROM api_tokens
     WHERE token_hash = %(token_hash)s AND revoked_at IS NULL
), touched AS (
    UPDATE api_tokens SET last_used_at = now()
      FROM token
     WHERE api_tokens.id = token.id
       AND (token.last_used_at IS NULL OR token.last_used_at < now() - interval '1 minute')
)
SELECT users.* FROM users JOIN token ON token.user_id = users.id

-- list_tokens --
-- Tokens (never their secret), optionally of one user
SELECT api_tokens.id, api_tokens.user_id, users.name AS user_name, api_tokens.name,
       api_tokens.created_at, api_tokens.last_used_at, api_tokens.revoked_at
  FROM api_tokens JOIN users ON users.id = api_tokens.user_id
 WHERE (%(user_id)s::bigint IS NULL OR api_tokens.user_id = %(user_id)s)
 ORDER BY api_tokens.id

-- revoke_token --
-- Revoke a token; returns nothing when it does not exist
UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now())
 WHERE id = %(id)s
RETURNING id

-- insert_agent --
-- Create an agent
INSERT INTO agents (name, description, system_prompt, default_model, default_format, owner_id,
                    default_json_schema)
VALUES (%(name)s, %(description)s, %(system_prompt)s, %(default_model)s, %(default_format)s,
        %(owner_id)s, %(default_json_schema)s)
RETURNING *

-- update_agent --
-- Edit an agent
UPDATE agents
   SET name = %(name)s, description = %(description)s, system_prompt = %(system_prompt)s,
       default_model = %(default_model)s, default_format = %(default_format)s,
       default_json_schema = %(default_json_schema)s, updated_at = now()
 WHERE id = %(id)s
RETURNING *

-- get_agent_by_name --
-- One agent by name
SELECT * FROM agents WHERE name = %(name)s

-- get_agent_by_id --
-- One agent by id
SELECT * FROM agents WHERE id = %(id)s

-- list_agents --
-- All agents by name
SELECT * FROM agents ORDER BY name

-- reserve_output_ids --
-- New output ids, drawn before the outputs are written (their jobs name them): n of them
SELECT nextval(pg_get_serial_sequence('llm_outputs', 'id')) AS id
  FROM generate_series(1, %(n)s)

-- insert_output --
-- A new pending output with no job behind it (test helpers)
INSERT INTO llm_outputs (user_id, agent_id, template, model, context, format, queue, priority,
                         kind, parent_id, system_prompt, template_version_id, comparison_id,
                         use_cache, json_schema)
VALUES (%(user_id)s, %(agent_id)s, %(template)s, %(model)s, %(context)s, %(format)s, %(queue)s,
        %(priority)s, %(kind)s, %(parent_id)s, %(system_prompt)s, %(template_version_id)s,
        %(comparison_id)s, %(use_cache)s, %(json_schema)s)
RETURNING id

-- enqueue_output --
-- A new pending output and its procrastinate job in one statement, so in one transaction even
-- without BEGIN and COMMIT: the output's id is drawn first, the job names it and the output names
-- the job. With the queue estimate: LLM jobs waiting ahead of it at its priority or higher
-- (counted up to 1,000: an estimate stays cheap however long the queue), and the model's recent
-- median latency
WITH reserved AS (
    SELECT nextval(pg_get_serial_sequence('llm_outputs', 'id')) AS id
), job AS (
    SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW(
               %(queue)s, %(task_name)s, %(priority)s, NULL, NULL,
               jsonb_build_object('output_id', reserved.id), NULL
           )::procrastinate_job_to_defer_v1]))[1] AS id
      FROM reserved
), output AS (
    INSERT INTO llm_outputs (id, user_id, agent_id, template, model, context, format, queue,
                             priority, kind, parent_id, system_prompt, template_version_id,
                             comparison_id, use_cache, json_schema, job_id)
    OVERRIDING SYSTEM VALUE
    SELECT reserved.id, %(user_id)s, %(agent_id)s, %(template)s, %(model)s, %(context)s,
           %(format)s, %(queue)s, %(priority)s, %(kind)s, %(parent_id)s, %(system_prompt)s,
           %(template_version_id)s, %(comparison_id)s, %(use_cache)s, %(json_schema)s, job.id
      FROM reserved, job
    RETURNING id, job_id
)
SELECT output.id, output.job_id,
    (SELECT count(*) FROM (SELECT 1 FROM procrastinate_jobs
      WHERE status IN ('todo', 'doing') AND task_name = %(task_name)s
        AND priority >= %(priority)s LIMIT 1000) AS capped) AS ahead,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
       FROM (SELECT latency_ms FROM llm_outputs
              WHERE model = %(model)s AND status = 'completed' AND latency_ms IS NOT NULL
              ORDER BY created_at DESC LIMIT 50) AS recent) AS median_latency_ms
  FROM output

-- get_output --
-- One output; when viewer_id is given, only if that user owns it. blind_pending: it belongs to a
-- blind comparison not yet judged
SELECT llm_outputs.*, users.name AS user_name,
       (llm_outputs.comparison_id IS NOT NULL AND EXISTS (
           SELECT 1 FROM comparisons AS c
            WHERE c.id = llm_outputs.comparison_id AND c.blind
              AND NOT EXISTS (SELECT 1 FROM preferences AS p WHERE p.comparison_id = c.id)))
       AS blind_pending
  FROM llm_outputs JOIN users ON users.id = llm_outputs.user_id
 WHERE llm_outputs.id = %(id)s
   AND (%(viewer_id)s::bigint IS NULL OR llm_outputs.user_id = %(viewer_id)s)

-- list_outputs --
-- Outputs newest first, filtered, one keyset page (ids below before_id). Filtered by model, the
-- answers of a blind comparison not yet judged are left out: the filter would tell them apart
SELECT llm_outputs.*, users.name AS user_name,
       (llm_outputs.comparison_id IS NOT NULL AND EXISTS (
           SELECT 1 FROM comparisons AS c
            WHERE c.id = llm_outputs.comparison_id AND c.blind
              AND NOT EXISTS (SELECT 1 FROM preferences AS p WHERE p.comparison_id = c.id)))
       AS blind_pending
  FROM llm_outputs JOIN users ON users.id = llm_outputs.user_id
 WHERE (%(user_id)s::bigint IS NULL OR llm_outputs.user_id = %(user_id)s)
   AND (%(status)s::text IS NULL OR llm_outputs.status = %(status)s)
   AND (%(model)s::text IS NULL
        OR (llm_outputs.model = %(model)s
            AND NOT (llm_outputs.comparison_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM comparisons AS c
                 WHERE c.id = llm_outputs.comparison_id AND c.blind
                   AND NOT EXISTS (SELECT 1 FROM preferences AS p WHERE p.comparison_id = c.id)))))
   AND (%(format)s::text IS NULL OR llm_outputs.format = %(format)s)
   AND (%(feedback)s::text IS NULL OR llm_outputs.feedback = %(feedback)s)
   AND (%(template)s::text IS NULL
        OR (md5(llm_outputs.template) = md5(%(template)s) AND llm_outputs.template = %(template)s))
   AND (%(created_after)s::timestamptz IS NULL OR llm_outputs.created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR llm_outputs.created_at < %(created_before)s)
   AND (%(batch_id)s::bigint IS NULL OR llm_outputs.batch_id = %(batch_id)s)
   AND (%(before_id)s::bigint IS NULL OR llm_outputs.id < %(before_id)s)
 ORDER BY llm_outputs.id DESC
 LIMIT %(limit)s

-- output_children --
-- Outputs made from this one (re-runs and regenerations)
SELECT * FROM llm_outputs WHERE parent_id = %(id)s ORDER BY id

-- start_attempts --
-- Mark outputs processing for new attempts and read them (one output once per call): nothing for
-- an output that is final, gone, or has a newer attempt running
UPDATE llm_outputs o
   SET status = 'processing', attempts = a.attempt, started_at = now()
  FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[]) AS a(id, attempt)
 WHERE o.id = a.id AND o.status IN ('pending', 'processing') AND o.attempts < a.attempt
RETURNING o.*

-- complete_outputs --
-- Store the answers of current attempts (one output once per call); the ids stored
UPDATE llm_outputs o
   SET status = 'completed', prompt = c.prompt, raw_response = c.raw_response,
       parsed_output = c.parsed_output, cache_key = c.cache_key,
       prompt_tokens = c.prompt_tokens, completion_tokens = c.completion_tokens,
       cost = c.cost, latency_ms = c.latency_ms, error_message = NULL, completed_at = now(),
       schema_valid = CASE WHEN o.json_schema IS NOT NULL THEN true END,
       schema_first_try = CASE WHEN o.json_schema IS NOT NULL THEN c.schema_first_try END
  FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[], %(prompts)s::text[],
              %(raw_responses)s::text[], %(parsed_outputs)s::jsonb[], %(cache_keys)s::text[],
              %(prompt_tokens)s::integer[], %(completion_tokens)s::integer[],
              %(costs)s::numeric[], %(latencies)s::integer[], %(schema_first_tries)s::boolean[])
       AS c(id, attempt, prompt, raw_response, parsed_output, cache_key, prompt_tokens,
            completion_tokens, cost, latency_ms, schema_first_try)
 WHERE o.id = c.id AND o.attempts = c.attempt AND o.status = 'processing'
RETURNING o.id

-- retry_output --
-- The current attempt failed and another is scheduled
UPDATE llm_outputs
   SET status = 'pending', error_message = %(error_message)s, raw_response = %(raw_response)s,
       prompt = COALESCE(%(prompt)s, prompt)
 WHERE id = %(id)s AND attempts = %(attempt)s AND status = 'processing'
RETURNING id

-- fail_output --
-- The current attempt failed for good
UPDATE llm_outputs
   SET status = 'failed', error_message = %(error_message)s,
       raw_response = COALESCE(%(raw_response)s, raw_response),
       prompt = COALESCE(%(prompt)s, prompt), completed_at = now(),
       schema_valid = CASE WHEN json_schema IS NOT NULL AND %(schema_broken)s THEN false END,
       schema_first_try = CASE WHEN json_schema IS NOT NULL AND %(schema_broken)s THEN false END,
       schema_errors = CASE WHEN json_schema IS NOT NULL THEN %(schema_errors)s::jsonb END
 WHERE id = %(id)s AND attempts = %(attempt)s AND status IN ('pending', 'processing')
RETURNING id

-- fail_output_by_job --
-- Fail whatever output belongs to a job that will never run again (stalled past its retries,
-- cancelled, or lost its task)
UPDATE llm_outputs
   SET status = 'failed', error_message = %(error_message)s, completed_at = now()
 WHERE job_id = %(job_id)s AND status IN ('pending', 'processing')
RETURNING id

-- set_feedback --
-- Change the feedback of a completed output (each part given, the others kept) and record the
-- change; nothing when the output is not completed
WITH old AS (
    SELECT id, feedback, feedback_reasons, feedback_comment, corrected_answer
      FROM llm_outputs WHERE id = %(output_id)s AND status = 'completed'
       FOR UPDATE
), changed AS (
    UPDATE llm_outputs
       SET feedback = coalesce(%(feedback)s::text, old.feedback),
           feedback_reasons = coalesce(%(reasons)s::text[], old.feedback_reasons),
           feedback_comment = CASE WHEN %(set_comment)s THEN %(comment)s::text
                                   ELSE old.feedback_comment END,
           corrected_answer = CASE WHEN %(set_corrected)s THEN %(corrected_answer)s::text
                                   ELSE old.corrected_answer END
      FROM old WHERE llm_outputs.id = old.id
    RETURNING llm_outputs.id, old.feedback AS old_value, llm_outputs.feedback AS new_value,
              llm_outputs.feedback_reasons AS reasons, llm_outputs.feedback_comment AS comment,
              llm_outputs.corrected_answer,
              array_remove(ARRAY[
                  CASE WHEN old.feedback IS DISTINCT FROM llm_outputs.feedback
                         OR %(feedback)s::text IS NOT NULL THEN 'feedback' END,
                  CASE WHEN old.feedback_reasons IS DISTINCT FROM llm_outputs.feedback_reasons
                       THEN 'reasons' END,
                  CASE WHEN old.feedback_comment IS DISTINCT FROM llm_outputs.feedback_comment
                       THEN 'comment' END,
                  CASE WHEN old.corrected_answer IS DISTINCT FROM llm_outputs.corrected_answer
                       THEN 'corrected_answer' END], NULL) AS changed
), event AS (
    INSERT INTO feedback_events (output_id, user_id, old_value, new_value, reasons, comment,
                                 corrected_answer, changed)
    SELECT id, %(user_id)s, old_value, new_value, reasons, comment, corrected_answer, changed
      FROM changed
    RETURNING *
)
SELECT event.*, users.name AS user_name FROM event JOIN users ON users.id = event.user_id

-- feedback_reasons --
-- The reasons a person may give, in the order admins set
SELECT name, description, position FROM feedback_reasons ORDER BY position, name

-- add_feedback_reason --
-- Add a reason, or change its description and place
INSERT INTO feedback_reasons (name, description, position)
VALUES (%(name)s, coalesce(%(description)s::text, ''),
        coalesce(%(position)s, (SELECT coalesce(max(position), 0) + 1 FROM feedback_reasons)))
ON CONFLICT (name) DO UPDATE
   SET description = coalesce(%(description)s::text, feedback_reasons.description),
       position = coalesce(%(position)s, feedback_reasons.position)
RETURNING name, description, position

-- lock_feedback_reasons --
-- One change to the reasons list at a time (its cap holds under concurrent admins)
LOCK TABLE feedback_reasons IN SHARE ROW EXCLUSIVE MODE

-- remove_feedback_reason --
-- Take a reason off the list (outputs that have it keep it)
DELETE FROM feedback_reasons WHERE name = %(name)s RETURNING name

-- feedback_history --
-- Every feedback change of one output, oldest first
SELECT feedback_events.*, users.name AS user_name
  FROM feedback_events JOIN users ON users.id = feedback_events.user_id
 WHERE output_id = %(output_id)s
 ORDER BY feedback_events.id

-- count_user_outputs --
-- How many outputs a user has, by status
SELECT status, count(*) AS n FROM llm_outputs WHERE user_id = %(user_id)s GROUP BY status

-- set_output_state --
-- Put an output in a given state directly (test helpers and data imports; not the worker's path)
UPDATE llm_outputs
   SET status = %(status)s, raw_response = %(raw_response)s, parsed_output = %(parsed_output)s,
       feedback = %(feedback)s, error_message = %(error_message)s,
       attempts = GREATEST(attempts, 1),
       started_at = COALESCE(started_at, now()),
       completed_at = CASE WHEN %(status)s IN ('completed', 'failed') THEN now() END
 WHERE id = %(id)s
RETURNING *

-- llm_jobs_since --
-- LLM jobs queued after a job id, with their outputs (for assertions on what was enqueued)
SELECT jobs.id AS job_id, jobs.queue_name, jobs.priority, jobs.status AS job_status,
       llm_outputs.id AS output_id, llm_outputs.template, llm_outputs.model, llm_outputs.format,
       llm_outputs.context, llm_outputs.json_schema
  FROM procrastinate_jobs AS jobs
  LEFT JOIN llm_outputs ON llm_outputs.job_id = jobs.id
 WHERE jobs.task_name = 'llm_job' AND jobs.id > %(after_id)s
 ORDER BY jobs.id

-- set_schema_outcome --
-- Whether an output's answer validated against its schema, and at the first try (test helpers)
UPDATE llm_outputs
   SET schema_valid = %(valid)s, schema_first_try = %(first_try)s
 WHERE id = %(id)s AND json_schema IS NOT NULL
RETURNING id

-- last_job_id --
-- The highest procrastinate job id so far (0 when none)
SELECT COALESCE(max(id), 0) AS id FROM procrastinate_jobs

-- insert_outputs_bulk --
-- Many pending outputs of one template, model and JSON Schema, one per context, each with its
-- reserved id and its job
INSERT INTO llm_outputs (id, user_id, agent_id, template, model, context, format, queue, priority,
                         kind, parent_id, system_prompt, template_version_id, use_cache,
                         json_schema, job_id)
OVERRIDING SYSTEM VALUE
SELECT rows.id, %(user_id)s, %(agent_id)s, %(template)s, %(model)s, rows.context, %(format)s,
       %(queue)s, %(priority)s, 'original', NULL, %(system_prompt)s, %(template_version_id)s,
       %(use_cache)s, %(json_schema)s, rows.job_id
  FROM unnest(%(ids)s::bigint[], %(contexts)s::jsonb[], %(job_ids)s::bigint[])
       AS rows(id, context, job_id)

-- set_output_jobs_bulk --
-- Link many outputs to their jobs (same transaction as the inserts)
UPDATE llm_outputs SET job_id = links.job_id
  FROM unnest(%(ids)s::bigint[], %(job_ids)s::bigint[]) AS links(id, job_id)
 WHERE llm_outputs.id = links.id

-- fetch_jobs --
-- procrastinate's fetch_job for up to %(count)s jobs in one statement (llmjobs_fetch_jobs), in
-- the order it takes them, and in the same statement the start of each LLM job's attempt
-- (start_attempts for its output and attempt number): `started` is the output now processing,
-- as JSON, or null when it was not started here (another task; a second job of the same output;
-- an output final, gone or newer; or one committed after this statement began, which the fetch,
-- taking a fresh snapshot per job, can see before this UPDATE does): the job then starts its
-- attempt with a statement of its own, which decides. The outputs are found by their primary
-- key alone, whatever the statistics say: written as `status IN ('pending', 'processing')` the
-- status would be an index condition, and a planner without statistics (a fresh database, a
-- batch just queued) takes the pending rows for few and reads them all, the whole backlog, at
-- every fetch; `NOT IN` of the two final statuses is the same test and never an index's
-- condition. The fetch takes provider limits for %(task)s jobs (a minute of %(minute)s seconds;
-- workers silent %(stalled)s seconds hold no call): `limited` is the model whose capacity the
-- job took, if any.
WITH fetched AS MATERIALIZED (
    SELECT (j.job).id, (j.job).status, (j.job).task_name, (j.job).priority, (j.job).lock,
           (j.job).queueing_lock, (j.job).args, (j.job).scheduled_at, (j.job).queue_name,
           (j.job).attempts, (j.job).worker_id, j.limited, j.ordinality,
           CASE WHEN (j.job).task_name = %(task)s
                 AND (j.job).args->>'output_id' ~ '^[0-9]{1,18}$'
                THEN ((j.job).args->>'output_id')::bigint END AS output_id
      FROM llmjobs_fetch_jobs(%(queues)s::varchar[], %(worker_id)s, %(count)s, %(task)s,
                              %(minute)s, %(stalled)s)
           WITH ORDINALITY AS j
), first_of_output AS (
    SELECT DISTINCT ON (output_id) id AS job_id, output_id, attempts + 1 AS attempt
      FROM fetched
     WHERE output_id IS NOT NULL
     ORDER BY output_id, ordinality
), started AS (
    UPDATE llm_outputs o
       SET status = 'processing', attempts = s.attempt, started_at = now()
      FROM first_of_output s
     WHERE o.id = ANY (ARRAY(SELECT output_id FROM first_of_output)) AND o.id = s.output_id
       AND o.status NOT IN ('completed', 'failed') AND o.attempts < s.attempt
    RETURNING s.job_id, to_jsonb(o.*) AS output
)
SELECT f.id, f.status, f.task_name, f.priority, f.lock, f.queueing_lock, f.args, f.scheduled_at,
       f.queue_name, f.attempts, f.worker_id, s.output AS started, f.limited
  FROM fetched f
  LEFT JOIN started s ON s.job_id = f.id
 ORDER BY f.ordinality

-- procrastinate_functions --
-- Which of procrastinate's versioned functions named in %(names)s the database has
SELECT DISTINCT proname::text AS name FROM pg_proc WHERE proname = ANY(%(names)s)

-- procrastinate_fetch_body --
-- The md5 of procrastinate_fetch_job_v2's body, whitespace folded (none: no such function)
SELECT md5(regexp_replace(prosrc, '\s+', ' ', 'g')) AS md5
  FROM pg_proc WHERE proname = 'procrastinate_fetch_job_v2'

-- fetch_one_job --
-- procrastinate's fetch_job (one job) through llmjobs_fetch_jobs, which skips paused queues and
-- takes provider limits; `limited`: the model whose capacity the job took, if any
SELECT (j.job).id, (j.job).status, (j.job).task_name, (j.job).priority, (j.job).lock,
       (j.job).queueing_lock, (j.job).args, (j.job).scheduled_at, (j.job).queue_name,
       (j.job).attempts, (j.job).worker_id, j.limited
  FROM llmjobs_fetch_jobs(%(queues)s::varchar[], %(worker_id)s, 1, %(task)s, %(minute)s,
                          %(stalled)s) AS j

-- finish_jobs --
-- procrastinate's finish_job for several jobs in one statement (one job once per call)
SELECT procrastinate_finish_job_v1(f.job_id, f.status::procrastinate_job_status, f.delete_job)
  FROM unnest(%(job_ids)s::bigint[], %(statuses)s::text[], %(delete_jobs)s::boolean[])
       AS f(job_id, status, delete_job)

-- queue_tables_grown --
-- Of the job queue's two tables, those a bulk write of %(rows)s rows grew by at least
-- %(min_rows)s rows and %(share)s of what their statistics last counted (none: never analyzed)
SELECT c.relname::text AS name
  FROM pg_class AS c
 WHERE c.oid IN ('procrastinate_jobs'::regclass, 'llm_outputs'::regclass)
   AND %(rows)s >= GREATEST(%(min_rows)s::float8, %(share)s * GREATEST(c.reltuples, 0))
 ORDER BY c.relname

-- queue_tables_stale --
-- Of the job queue's two tables, those whose statistics lag behind their rows, whatever wrote
-- them: they hold %(min_rows)s more live rows than twice what the statistics counted (a backlog
-- that grew since, say from single submissions), or %(share)s of their rows changed since an
-- ANALYZE over a minute ago (autovacuum's rule, for a server where it is off or late)
SELECT s.relname::text AS name
  FROM pg_stat_user_tables AS s
  JOIN pg_class AS c ON c.oid = s.relid
 WHERE s.relid IN ('procrastinate_jobs'::regclass, 'llm_outputs'::regclass)
   AND (s.n_live_tup >= %(min_rows)s + 2 * GREATEST(c.reltuples, 0)
        OR (s.n_mod_since_analyze >= GREATEST(%(min_rows)s::float8,
                                              %(share)s * GREATEST(c.reltuples, 0))
            AND COALESCE(GREATEST(s.last_analyze, s.last_autoanalyze), '-infinity')
                < now() - interval '1 minute'))
 ORDER BY s.relname

-- analyze_lock_timeout --
-- How long a bulk write's ANALYZE may wait for a table's lock (for the savepoint around it)
SET LOCAL lock_timeout = '1s'

-- analyze_jobs --
-- Fresh statistics of procrastinate's jobs (a sample: its cost does not grow with the table)
ANALYZE procrastinate_jobs

-- analyze_outputs --
-- Fresh statistics of the outputs (a sample: its cost does not grow with the table)
ANALYZE llm_outputs
