-- Analytics rollup: the Analytics page's figures per closed period, so that its aggregates read a
-- few thousand rolled-up rows instead of every output of the range.
--
-- Periods are UTC days, and the hours of the day not yet closed. A period is rolled up once it
-- ended more than 10 minutes ago (the settling time: no statement writing outputs runs that
-- long), newest first, by analytics_refresh(). An aggregate reads the rollup for the clean
-- periods inside its range and the outputs themselves for the rest (analytics_open_ranges): the
-- range's partial days and the last hour or so.
--
-- Outputs change after their period closed (feedback given later, a retry finishing, a user
-- deleted). A trigger notes the hour of every output created before the current hour whose
-- analytics figures change, in analytics_changes; a period with a noted hour is not used until
-- the next refresh recomputes it. Outputs of the current hour, the worker's usual case, note
-- nothing: the trigger's WHEN condition skips them.

CREATE TABLE analytics_periods (
    period_start  timestamptz PRIMARY KEY,
    period_end    timestamptz NOT NULL CHECK (period_end > period_start),
    rolled_up_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per period, user, model and template, and the same figures over every user (user_id
-- 0), every model (model '') and every template (template_md5 ''), in each combination: whatever
-- the filters, an aggregate reads only the rows of its own filter. Status and feedback are
-- counted in columns rather than rows. Library template versions are kept apart (analytics by
-- template names a template by its versions).
CREATE TABLE analytics_rollup (
    period_start         timestamptz NOT NULL,
    user_id              bigint NOT NULL,
    model                text NOT NULL,
    template_md5         text NOT NULL,
    template_version_id  bigint,
    template_head        text,
    outputs              integer NOT NULL,
    pending              integer NOT NULL,
    processing           integer NOT NULL,
    completed            integer NOT NULL,
    failed               integer NOT NULL,
    thumbs_up            integer NOT NULL,
    thumbs_down          integer NOT NULL,
    cost                 numeric,
    -- The latencies of completed outputs as a sparse histogram: bucket numbers (see
    -- analytics_latency_bucket) and how many outputs fell in each, pair by pair.
    latency_buckets      smallint[] NOT NULL,
    latency_counts       integer[] NOT NULL
);
CREATE INDEX analytics_rollup_period_idx
    ON analytics_rollup (period_start, user_id, template_md5, model);

-- Hours whose outputs changed after the hour closed, one row per hour and transaction.
CREATE TABLE analytics_changes (
    hour  timestamptz NOT NULL,
    xact  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (hour, xact)
);

-- Latency histogram buckets: one per millisecond below 16 ms, then 8 per doubling. A bucket's
-- values lie within 2^(1/8) - 1 (9.05 %) of each other, which bounds the percentile error.
CREATE FUNCTION analytics_latency_floor(bucket integer) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN bucket < 16 THEN bucket::float8
                ELSE 16 * power(2::float8, (bucket - 16) / 8.0::float8) END
$$;

-- Inlined by the planner (a single expression). The tiny epsilon keeps exact powers of two, where
-- a bucket starts, from falling one bucket low through the logarithm's rounding.
CREATE FUNCTION analytics_latency_bucket(latency_ms integer) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN latency_ms < 16 THEN greatest(latency_ms, 0)
                 ELSE 16 + floor(8 * ln(latency_ms / 16::float8) / ln(2::float8) + 1e-9)
            END)::smallint
$$;

-- The j-th smallest (from 0) of n values in a bucket: spread evenly over its whole milliseconds.
CREATE FUNCTION analytics_latency_estimate(bucket integer, j bigint, n bigint) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN bucket < 16 THEN bucket::float8
                ELSE ceil(analytics_latency_floor(bucket))
                     + (ceil(analytics_latency_floor(bucket + 1)) - 1
                        - ceil(analytics_latency_floor(bucket))) * (j + 0.5) / n END
$$;

-- percentile_cont(fraction) of the values a merged histogram holds (buckets ascending). Each value
-- is estimated within its bucket, so the result is within 9.05 % of the exact one (exact below
-- 16 ms); on real spreads of latencies, the error is a fraction of a percent.
CREATE FUNCTION analytics_latency_percentile(buckets smallint[], counts bigint[], fraction float8)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    total bigint := 0;
    below bigint := 0;
    position float8;
    k bigint;
    n bigint;
    i integer := 0;
    low_value float8;
    high_value float8;
BEGIN
    FOREACH n IN ARRAY counts LOOP
        total := total + n;
    END LOOP;
    IF total = 0 THEN
        RETURN NULL;
    END IF;
    -- percentile_cont: between the k-th and (k+1)-th smallest values, k = floor(position)
    position := fraction * (total - 1);
    k := floor(position);
    FOREACH n IN ARRAY counts LOOP
        i := i + 1;
        IF low_value IS NULL AND k < below + n THEN
            low_value := analytics_latency_estimate(buckets[i], k - below, n);
        END IF;
        IF k + 1 < below + n THEN
            high_value := analytics_latency_estimate(buckets[i], k + 1 - below, n);
            EXIT;
        END IF;
        below := below + n;
    END LOOP;
    RETURN low_value + (position - k) * (coalesce(high_value, low_value) - low_value);
END
$$;

-- The rolled-up periods inside [created_after, created_before) that no change has made stale.
CREATE FUNCTION analytics_rolled_periods(created_after timestamptz, created_before timestamptz)
RETURNS TABLE (period_start timestamptz, period_end timestamptz)
LANGUAGE sql STABLE ROWS 60 AS $$
    SELECT p.period_start, p.period_end
      FROM analytics_periods AS p
     WHERE p.period_start >= coalesce(created_after, '-infinity')
       AND p.period_end <= coalesce(created_before, 'infinity')
       AND NOT EXISTS (SELECT 1 FROM analytics_changes AS c
                        WHERE c.hour >= p.period_start AND c.hour < p.period_end)
$$;

-- The rest of [created_after, created_before): the ranges whose outputs are read directly.
CREATE FUNCTION analytics_open_ranges(created_after timestamptz, created_before timestamptz)
RETURNS TABLE (range_start timestamptz, range_end timestamptz)
LANGUAGE sql STABLE ROWS 3 AS $$
    WITH rolled AS (
        SELECT r.period_start, r.period_end,
               lag(r.period_end) OVER (ORDER BY r.period_start) AS previous_end
          FROM analytics_rolled_periods(created_after, created_before) AS r
    ), gaps AS (
        SELECT coalesce(rolled.previous_end, created_after, '-infinity') AS range_start,
               rolled.period_start AS range_end
          FROM rolled
        UNION ALL
        SELECT coalesce(max(rolled.period_end), created_after, '-infinity'),
               coalesce(created_before, 'infinity')
          FROM rolled
    )
    SELECT gaps.range_start, gaps.range_end FROM gaps WHERE gaps.range_start < gaps.range_end
$$;

-- The outputs of the open ranges that pass the filters (NULL: no restriction), with their
-- template's md5, head and version when with_template (otherwise NULL: the covering index on
-- created_at answers without reading the table). Each range is planned with its own bounds,
-- which a join on the ranges would leave the planner to guess.
CREATE FUNCTION analytics_open_outputs(
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
                'SELECT o.created_at, o.model, o.status, o.feedback, o.cost, o.latency_ms,
                        md5(o.template), left(o.template, 80), o.template_version_id
                   FROM llm_outputs AS o
                  WHERE o.created_at >= $1 AND o.created_at < $2
                    AND ($3::bigint IS NULL OR o.user_id = $3)
                    AND ($4::text IS NULL OR o.model = $4)
                    AND ($5::text IS NULL OR (md5(o.template) = md5($5) AND o.template = $5))'
                USING gap.range_start, gap.range_end, for_user, for_model, for_template;
        ELSE
            RETURN QUERY EXECUTE
                'SELECT o.created_at, o.model, o.status, o.feedback, o.cost, o.latency_ms,
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

-- Roll up the periods inside [created_after, created_before) (NULL: open) that are settled and
-- missing or stale, newest first, at most max_periods (NULL: all); returns how many. Does nothing
-- when another refresh holds the lock.
CREATE FUNCTION analytics_refresh(
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
                                      processing, completed, failed, thumbs_up, thumbs_down, cost,
                                      latency_buckets, latency_counts)
        SELECT starts_at,
               CASE WHEN cells.every_user = 1 THEN 0 ELSE cells.user_id END,
               CASE WHEN cells.every_model = 1 THEN '' ELSE cells.model END,
               CASE WHEN cells.every_template = 1 THEN '' ELSE cells.template_md5 END,
               cells.template_version_id,
               CASE WHEN cells.every_template = 1 THEN NULL ELSE min(cells.template_head) END,
               sum(cells.outputs), sum(cells.pending), sum(cells.processing),
               sum(cells.completed), sum(cells.failed), sum(cells.thumbs_up),
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
                   count(*) FILTER (WHERE src.feedback = 'thumbs_up') AS thumbs_up,
                   count(*) FILTER (WHERE src.feedback = 'thumbs_down') AS thumbs_down,
                   sum(src.cost) AS cost
              FROM (
                -- C collation: grouping compares bytes, not locale rules
                SELECT o.user_id, o.model COLLATE "C" AS model,
                       md5(o.template) COLLATE "C" AS template_md5, o.template_version_id,
                       left(o.template, 80) AS template_head, o.status, o.feedback, o.cost,
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

-- Note the hour of an output created before the current hour when its figures change.
CREATE FUNCTION analytics_note_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current_hour timestamptz := date_trunc('hour', statement_timestamp(), 'UTC');
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.created_at < current_hour THEN
        INSERT INTO analytics_changes (hour) VALUES (date_trunc('hour', OLD.created_at, 'UTC'))
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.created_at < current_hour
       AND (TG_OP = 'INSERT' OR date_trunc('hour', NEW.created_at, 'UTC')
                                <> date_trunc('hour', OLD.created_at, 'UTC')) THEN
        INSERT INTO analytics_changes (hour) VALUES (date_trunc('hour', NEW.created_at, 'UTC'))
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER llm_outputs_analytics_insert AFTER INSERT ON llm_outputs FOR EACH ROW
    WHEN (NEW.created_at < date_trunc('hour', statement_timestamp(), 'UTC'))
    EXECUTE FUNCTION analytics_note_change();

CREATE TRIGGER llm_outputs_analytics_update AFTER UPDATE ON llm_outputs FOR EACH ROW
    WHEN ((OLD.created_at < date_trunc('hour', statement_timestamp(), 'UTC')
           OR NEW.created_at < date_trunc('hour', statement_timestamp(), 'UTC'))
          AND (OLD.created_at, OLD.user_id, OLD.model, OLD.template_version_id, OLD.status,
               OLD.feedback, OLD.cost, OLD.latency_ms, OLD.template)
              IS DISTINCT FROM
              (NEW.created_at, NEW.user_id, NEW.model, NEW.template_version_id, NEW.status,
               NEW.feedback, NEW.cost, NEW.latency_ms, NEW.template))
    EXECUTE FUNCTION analytics_note_change();

CREATE TRIGGER llm_outputs_analytics_delete AFTER DELETE ON llm_outputs FOR EACH ROW
    WHEN (OLD.created_at < date_trunc('hour', statement_timestamp(), 'UTC'))
    EXECUTE FUNCTION analytics_note_change();

CREATE FUNCTION analytics_forget_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE analytics_rollup, analytics_periods, analytics_changes;
    RETURN NULL;
END
$$;

CREATE TRIGGER llm_outputs_analytics_truncate AFTER TRUNCATE ON llm_outputs
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_forget_all();
