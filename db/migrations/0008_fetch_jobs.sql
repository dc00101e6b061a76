-- A worker with many free slots takes several jobs in one statement: procrastinate's own fetch,
-- called until it finds nothing or `p_count` jobs are taken. Each call sees the jobs the earlier
-- ones took (and their locks), exactly as separate fetches would.

CREATE FUNCTION llmjobs_fetch_jobs(
    target_queue_names character varying[],
    p_worker_id bigint,
    p_count integer
)
    RETURNS SETOF procrastinate_jobs
    LANGUAGE plpgsql
AS $$
DECLARE
    found_job procrastinate_jobs;
BEGIN
    FOR i IN 1 .. p_count LOOP
        found_job := procrastinate_fetch_job_v2(target_queue_names, p_worker_id);
        EXIT WHEN found_job.id IS NULL;
        RETURN NEXT found_job;
    END LOOP;
END;
$$;
