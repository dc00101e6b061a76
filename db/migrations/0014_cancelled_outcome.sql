-- Cancelled jobs are not failures: analytics count an output failed by a cancel apart.
--
-- A job cancelled before it ran fails its output with the error "cancelled by <name>" (a
-- batch's cancel, an admin's cancel of one job). llm_output_outcome names that outcome
-- 'cancelled'; the analytics read it instead of the status, and the rollup counts it in its own
-- column (failed is now the failures alone). Every rolled-up period is recomputed: the next
-- refresh rolls them up again.

CREATE FUNCTION llm_output_outcome(status text, error_message text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN status = 'failed' AND starts_with(error_message, 'cancelled by ')
                THEN 'cancelled' ELSE status END
$$;

ALTER TABLE analytics_rollup ADD COLUMN cancelled integer NOT NULL DEFAULT 0;

TRUNCATE analytics_rollup, analytics_periods, analytics_changes;

-- The trigger notes an output whose outcome changes: its error message counts too.
DROP TRIGGER llm_outputs_analytics_update ON llm_outputs;
CREATE TRIGGER llm_outputs_analytics_update AFTER UPDATE ON llm_outputs FOR EACH ROW
    WHEN ((OLD.created_at < date_trunc('hour', statement_timestamp(), 'UTC')
           OR NEW.created_at < date_trunc('hour', statement_timestamp(), 'UTC'))
          AND (OLD.created_at, OLD.user_id, OLD.model, OLD.template_version_id, OLD.status,
               OLD.feedback, OLD.cost, OLD.latency_ms, OLD.template,
               llm_output_outcome(OLD.status, OLD.error_message))
              IS DISTINCT FROM
              (NEW.created_at, NEW.user_id, NEW.model, NEW.template_version_id, NEW.status,
               NEW.feedback, NEW.cost, NEW.latency_ms, NEW.template,
               llm_output_outcome(NEW.status, NEW.error_message)))
    EXECUTE FUNCTION analytics_note_change();

-- As in 0006, with each output's outcome as its status.
CREATE OR REPLACE FUNCTION analytics_open_outputs(
    created_after timestamptz,
    created_before timestamptz,
    for_user bigint,
    for_model text,
    for_template text,
    with_template boolean
) RETURNS TABLE (
    created_at timestamptz,
    model text,
    status text,
    feedback text,
    cost numeric,
    latency_ms integer,
    template_md5 text,
    template_head text,
    template_version_id bigint
) LANGUAGE plpgsql STABLE ROWS 1000 AS $$
DECLARE
    gap record;
BEGIN
    FOR gap IN SELECT g.range_start, g.range_end
                 FROM analytics_open_ranges(created_after, created_before) AS g LOOP
        IF with_template THEN
            RETURN QUERY EXECUTE
                'SELECT o.created_at, o.model, llm_output_outcome(o.status, o.error_message),
                        o.feedback, o.cost, o.latency_ms,
                        md5(o.template), left(o.template, 80), o.template_version_id
                   FROM llm_outputs AS o
                  WHERE o.created_at >= $1 AND o.created_at < $2
                    AND ($3::bigint IS NULL OR o.user_id = $3)
                    AND ($4::text IS NULL OR o.model = $4)
                    AND ($5::text IS NULL OR (md5(o.template) = md5($5) AND o.template = $5))'
                USING gap.range_start, gap.range_end, for_user, for_model, for_template;
        ELSE
            RETURN QUERY EXECUTE
                'SELECT o.created_at, o.model, llm_output_outcome(o.status, o.error_message),
                        o.feedback, o.cost, o.latency_ms,
                        NULL::text, NULL::text, NULL::bigint
                   FROM llm_outputs AS o
                  WHERE o.created_at >= $1 AND o.created_at < $2
                    AND ($3::bigint IS NULL OR o.user_id = $3)
                    AND ($4::text IS NULL OR o.model = $4)
                    AND ($5::text IS NULL OR (md5(o.template) = md5($5) AND o.template = $5))'
                USING gap.range_start, gap.range_end, for_user, for_model, for_template;
        END IF;
    END LOOP;
END
$$;

-- As in 0006, counting cancelled outputs apart.
CREATE OR REPLACE FUNCTION analytics_refresh(
    created_after timestamptz DEFAULT NULL,
    created_before timestamptz DEFAULT NULL,
    max_periods integer DEFAULT NULL
) RETURNS integer LANGUAGE plpgsql
-- Days are UTC days whatever the session's time zone; one period at a time, compiling its plans
-- (JIT) costs more than it saves, and a day's groups fit in memory.
SET TimeZone = 'UTC' SET jit = off SET work_mem = '64MB' AS $$
DECLARE
    settled timestamptz := now() - interval '10 minutes';
    first_day timestamptz;
    open_day timestamptz := date_trunc('day', settled, 'UTC');
    due_starts timestamptz[];
    due_ends timestamptz[];
    seen_hours timestamptz[];
    seen_xacts xid8[];
    starts_at timestamptz;
    ends_at timestamptz;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7305112002) THEN
        RETURN 0;
    END IF;
    SELECT date_trunc('day', least((SELECT min(o.created_at) FROM llm_outputs AS o),
                                   (SELECT min(p.period_start) FROM analytics_periods AS p),
                                   (SELECT min(c.hour) FROM analytics_changes AS c)), 'UTC')
      INTO first_day;
    IF first_day IS NULL THEN
        RETURN 0;
    END IF;
    first_day := greatest(first_day, date_trunc('day', created_after, 'UTC'));

    -- Closed days, then the closed hours of the day still open.
    WITH candidates AS (
        SELECT d AS period_start, d + interval '1 day' AS period_end
          FROM generate_series(first_day, open_day - interval '1 day', interval '1 day') AS d
        UNION ALL
        SELECT h, h + interval '1 hour'
          FROM generate_series(greatest(first_day, open_day),
                               date_trunc('hour', settled, 'UTC') - interval '1 hour',
                               interval '1 hour') AS h
    ), due AS (
        SELECT c.period_start, c.period_end
          FROM candidates AS c
         WHERE c.period_start >= coalesce(created_after, '-infinity')
           AND c.period_end <= coalesce(created_before, 'infinity')
           AND (NOT EXISTS (SELECT 1 FROM analytics_periods AS p
                             WHERE p.period_start = c.period_start
                               AND p.period_end = c.period_end)
                OR EXISTS (SELECT 1 FROM analytics_changes AS x
                            WHERE x.hour >= c.period_start AND x.hour < c.period_end))
         ORDER BY c.period_start DESC
         LIMIT max_periods
    )
    SELECT array_agg(due.period_start), array_agg(due.period_end) INTO due_starts, due_ends
      FROM due;
    IF due_starts IS NULL THEN
        RETURN 0;
    END IF;

    -- The changes seen now are accounted for by what is computed below (a later snapshot); those
    -- committed meanwhile stay noted and their period is recomputed next time.
    SELECT array_agg(x.hour), array_agg(x.xact) INTO seen_hours, seen_xacts
      FROM analytics_changes AS x
      JOIN unnest(due_starts, due_ends) AS d(period_start, period_end)
        ON x.hour >= d.period_start AND x.hour < d.period_end;

    FOR i IN 1 .. array_length(due_starts, 1) LOOP
        starts_at := due_starts[i];
        ends_at := due_ends[i];
        -- A day replaces the hours it was rolled up as while it was open.
        DELETE FROM analytics_rollup AS r
         WHERE r.period_start >= starts_at AND r.period_start < ends_at;
        DELETE FROM analytics_periods AS p
         WHERE p.period_start >= starts_at AND p.period_start < ends_at;
        INSERT INTO analytics_rollup (period_start, user_id, model, template_md5,
                                      template_version_id, template_head, outputs, pending,
                                      processing, completed, failed, cancelled, thumbs_up,
                                      thumbs_down, cost,
                                      latency_buckets, latency_counts)
        SELECT starts_at,
               CASE WHEN cells.every_user = 1 THEN 0 ELSE cells.user_id END,
               CASE WHEN cells.every_model = 1 THEN '' ELSE cells.model END,
               CASE WHEN cells.every_template = 1 THEN '' ELSE cells.template_md5 END,
               cells.template_version_id,
               CASE WHEN cells.every_template = 1 THEN NULL ELSE min(cells.template_head) END,
               sum(cells.outputs), sum(cells.pending), sum(cells.processing),
               sum(cells.completed), sum(cells.failed), sum(cells.cancelled),
               sum(cells.thumbs_up),
               sum(cells.thumbs_down), sum(cells.cost),
               coalesce(array_agg(cells.bucket) FILTER (WHERE cells.bucket IS NOT NULL), '{}'),
               coalesce(array_agg(cells.outputs) FILTER (WHERE cells.bucket IS NOT NULL), '{}')
          FROM (
            SELECT src.user_id, src.model, src.template_md5, src.template_version_id,
                   src.bucket,
                   GROUPING(src.user_id) AS every_user,
                   GROUPING(src.model) AS every_model,
                   GROUPING(src.template_md5) AS every_template,
                   min(src.template_head) AS template_head,
                   count(*) AS outputs,
                   count(*) FILTER (WHERE src.status = 'pending') AS pending,
                   count(*) FILTER (WHERE src.status = 'processing') AS processing,
                   count(*) FILTER (WHERE src.status = 'completed') AS completed,
                   count(*) FILTER (WHERE src.status = 'failed') AS failed,
                   count(*) FILTER (WHERE src.status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE src.feedback = 'thumbs_up') AS thumbs_up,
                   count(*) FILTER (WHERE src.feedback = 'thumbs_down') AS thumbs_down,
                   sum(src.cost) AS cost
              FROM (
                -- C collation: grouping compares bytes, not locale rules
                SELECT o.user_id, o.model COLLATE "C" AS model,
                       md5(o.template) COLLATE "C" AS template_md5, o.template_version_id,
                       left(o.template, 80) AS template_head,
                       llm_output_outcome(o.status, o.error_message) AS status, o.feedback, o.cost,
                       CASE WHEN o.status = 'completed'
                            THEN analytics_latency_bucket(o.latency_ms) END AS bucket
                  FROM llm_outputs AS o
                 WHERE o.created_at >= starts_at AND o.created_at < ends_at
              ) AS src
             GROUP BY src.bucket,
                      CUBE (src.user_id, src.model, (src.template_md5, src.template_version_id))
          ) AS cells
         GROUP BY cells.every_user, cells.user_id, cells.every_model, cells.model,
                  cells.every_template, cells.template_md5, cells.template_version_id
         -- in the index's order: the rows one filter reads share pages
         ORDER BY 2, 4, 3;
    END LOOP;

    INSERT INTO analytics_periods (period_start, period_end)
    SELECT d.period_start, d.period_end FROM unnest(due_starts, due_ends) AS d(period_start, period_end);

    DELETE FROM analytics_changes AS x
     USING unnest(seen_hours, seen_xacts) AS s(hour, xact)
     WHERE x.hour = s.hour AND x.xact = s.xact;
    RETURN array_length(due_starts, 1);
END
$$;
