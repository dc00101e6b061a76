-- The batched fetch reads procrastinate's fetch query in the order of its partial index on the
-- waiting jobs (priority, id), without statistics too. A planner without them (a fresh database,
-- a batch queued since the last ANALYZE) takes the waiting jobs for a handful, collects them
-- all and sorts them to take the first: a read of the whole backlog for every job fetched. With
-- sorts off inside this function, the index's order is the plan whatever the statistics say.

ALTER FUNCTION llmjobs_fetch_jobs(character varying[], bigint, integer) SET enable_sort = off;
