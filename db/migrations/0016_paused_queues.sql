-- Paused queues: a worker takes no waiting job of a queue named here, whatever machine it runs
-- on (every fetch reads this table); jobs already running finish, waiting ones stay. Resuming
-- deletes the row and notifies the workers as a new job would.

CREATE TABLE llmjobs_paused_queues (
    queue_name varchar(128) PRIMARY KEY,
    paused_at timestamptz NOT NULL DEFAULT now(),
    paused_by text NOT NULL
);

-- The fetch of 0012, skipping paused queues. With none paused (the usual case) it is 0012's
-- fetch, plan included. With some paused, the queues asked for lose the paused ones; a worker
-- of every queue asks for the queues that hold jobs (read from their index one name at a time,
-- a probe per queue) but the paused ones, and keeps the planner's choice like a worker of some
-- queues does (the index's order would walk past every waiting job of a paused queue).
CREATE OR REPLACE FUNCTION llmjobs_fetch_jobs(
    target_queue_names character varying[],
    p_worker_id bigint,
    p_count integer
)
    RETURNS SETOF procrastinate_jobs
    LANGUAGE plpgsql
AS $$
DECLARE
    found_job procrastinate_jobs;
    sorting text := current_setting('enable_sort');
    queues character varying[] := target_queue_names;
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
    FOR i IN 1 .. p_count LOOP
        found_job := procrastinate_fetch_job_v2(queues, p_worker_id);
        EXIT WHEN found_job.id IS NULL;
        RETURN NEXT found_job;
    END LOOP;
    PERFORM set_config('enable_sort', sorting, true);
END;
$$;

-- Throughput reads the events of the last hours: a BRIN index over their time (events are
-- written in time order) finds them without reading the whole history, and costs the writers
-- next to nothing.
CREATE INDEX llmjobs_events_at_brin ON procrastinate_events USING brin (at);

-- The failed-jobs list walks the failed jobs newest first; they are few next to the finished
-- ones, and this index keeps that walk from reading every finished job.
CREATE INDEX llmjobs_jobs_failed_idx ON procrastinate_jobs (id) WHERE status = 'failed';

-- The jobs an admin's bulk action picks, oldest first, at most p_limit: the count shown before
-- acting and the action itself both read this one WHERE. Maintenance jobs are never picked, nor
-- a job whose output already completed. Filters left NULL do not filter: the queue and the
-- model are exact, the error text is a case-insensitive substring of the output's error, the
-- age counts from the output's submission (the job's first event for a job without output).
CREATE FUNCTION llmjobs_jobs_by_filter(
    p_status procrastinate_job_status,
    p_queue text,
    p_model text,
    p_error text,
    p_older_than interval,
    p_limit integer
)
    RETURNS TABLE (job_id bigint, output_id bigint)
    LANGUAGE sql
    STABLE
AS $$
    SELECT jobs.id, outputs.id
      FROM procrastinate_jobs AS jobs
      LEFT JOIN llm_outputs AS outputs ON outputs.job_id = jobs.id
     WHERE jobs.status = p_status
       AND jobs.queue_name <> 'maintenance'
       AND (p_queue IS NULL OR jobs.queue_name = p_queue)
       AND (p_model IS NULL OR outputs.model = p_model)
       AND (p_error IS NULL OR strpos(lower(outputs.error_message), lower(p_error)) > 0)
       AND (p_older_than IS NULL OR COALESCE(
               outputs.created_at,
               (SELECT min(events.at) FROM procrastinate_events AS events
                 WHERE events.job_id = jobs.id)
           ) <= now() - p_older_than)
       AND (outputs.id IS NULL OR outputs.status <> 'completed')
     ORDER BY jobs.id
     LIMIT p_limit
$$;
