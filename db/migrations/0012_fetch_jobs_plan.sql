-- A worker taking jobs from every queue reads procrastinate's fetch query in the order of its
-- partial index on the waiting jobs (priority, id), without statistics too. A planner without
-- them (a fresh database, a batch queued since the last ANALYZE) takes the waiting jobs for a
-- handful, collects them all and sorts them to take the first: a read of the whole backlog for
-- every job fetched. With sorts off while this function runs, the index's order is the plan
-- whatever the statistics say. A worker of some queues keeps the planner's choice: the index's
-- order would walk past every waiting job of the queues ahead of its own.

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
BEGIN
    IF target_queue_names IS NULL THEN
        PERFORM set_config('enable_sort', 'off', true);
    END IF;
    FOR i IN 1 .. p_count LOOP
        found_job := procrastinate_fetch_job_v2(target_queue_names, p_worker_id);
        EXIT WHEN found_job.id IS NULL;
        RETURN NEXT found_job;
    END LOOP;
    PERFORM set_config('enable_sort', sorting, true);
END;
$$;
