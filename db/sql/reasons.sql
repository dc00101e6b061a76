-- Why people gave a thumb: the reasons of thumbs-down outputs by model, by template and over
-- time. Outputs with reasons are few: every query reads them through the partial index
-- llm_outputs_reasons_idx (its predicate, feedback_reasons <> '{}', is written out so that the
-- planner may use it), never the outputs without one. Each takes the analytics filters: user_id,
-- model, template (each NULL for all) and created_after / created_before (half-open, NULL: open).
-- `basis` is how many thumbs-down outputs with a reason the group has: a reason's share is
-- outputs / basis (an output may give several reasons).

-- reasons_by_model --
-- Per model and reason: thumbs-down outputs giving that reason, and the model's basis
WITH given AS (
    SELECT o.model, o.feedback_reasons
      FROM llm_outputs AS o
     WHERE o.feedback_reasons <> '{}' AND o.feedback = 'thumbs_down'
       AND (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
       AND (%(model)s::text IS NULL OR o.model = %(model)s)
       AND (%(template)s::text IS NULL
            OR (md5(o.template) = md5(%(template)s) AND o.template = %(template)s))
       AND (%(created_after)s::timestamptz IS NULL OR o.created_at >= %(created_after)s)
       AND (%(created_before)s::timestamptz IS NULL OR o.created_at < %(created_before)s)
), bases AS (
    SELECT model, count(*) AS basis FROM given GROUP BY model
)
SELECT g.model, r.reason, count(*) AS outputs, b.basis
  FROM given AS g
 CROSS JOIN LATERAL unnest(g.feedback_reasons) AS r(reason)
  JOIN bases AS b ON b.model = g.model
 GROUP BY g.model, r.reason, b.basis
 ORDER BY g.model, count(*) DESC, r.reason

-- reasons_by_template --
-- Per template (the `limit` with the most thumbs-down outputs with a reason) and reason; a
-- library template's version is named "name vN", as in analytics_by_template
WITH given AS (
    SELECT md5(o.template) AS template_md5, left(o.template, 80) AS template_head,
           o.template_version_id, o.feedback_reasons
      FROM llm_outputs AS o
     WHERE o.feedback_reasons <> '{}' AND o.feedback = 'thumbs_down'
       AND (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
       AND (%(model)s::text IS NULL OR o.model = %(model)s)
       AND (%(template)s::text IS NULL
            OR (md5(o.template) = md5(%(template)s) AND o.template = %(template)s))
       AND (%(created_after)s::timestamptz IS NULL OR o.created_at >= %(created_after)s)
       AND (%(created_before)s::timestamptz IS NULL OR o.created_at < %(created_before)s)
), bases AS (
    SELECT g.template_md5,
           COALESCE(max(t.name || ' v' || v.version), min(g.template_head)) AS label,
           count(*) AS basis
      FROM given AS g
      LEFT JOIN prompt_template_versions AS v ON v.id = g.template_version_id
      LEFT JOIN prompt_templates AS t ON t.id = v.template_id
     GROUP BY g.template_md5
     ORDER BY count(*) DESC, g.template_md5
     LIMIT %(limit)s
)
SELECT b.label, b.template_md5, r.reason, count(*) AS outputs, b.basis
  FROM given AS g
  JOIN bases AS b ON b.template_md5 = g.template_md5
 CROSS JOIN LATERAL unnest(g.feedback_reasons) AS r(reason)
 GROUP BY b.label, b.template_md5, r.reason, b.basis
 ORDER BY b.basis DESC, b.template_md5, count(*) DESC, r.reason

-- reasons_over_time --
-- Per time bucket (hour or day, UTC) and reason: thumbs-down outputs giving it, and the bucket's
-- basis
WITH given AS (
    SELECT date_trunc(%(bucket)s, o.created_at, 'UTC') AS bucket, o.feedback_reasons
      FROM llm_outputs AS o
     WHERE o.feedback_reasons <> '{}' AND o.feedback = 'thumbs_down'
       AND (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
       AND (%(model)s::text IS NULL OR o.model = %(model)s)
       AND (%(template)s::text IS NULL
            OR (md5(o.template) = md5(%(template)s) AND o.template = %(template)s))
       AND (%(created_after)s::timestamptz IS NULL OR o.created_at >= %(created_after)s)
       AND (%(created_before)s::timestamptz IS NULL OR o.created_at < %(created_before)s)
), bases AS (
    SELECT bucket, count(*) AS basis FROM given GROUP BY bucket
)
SELECT g.bucket, r.reason, count(*) AS outputs, b.basis
  FROM given AS g
 CROSS JOIN LATERAL unnest(g.feedback_reasons) AS r(reason)
  JOIN bases AS b ON b.bucket = g.bucket
 GROUP BY g.bucket, r.reason, b.basis
 ORDER BY g.bucket, count(*) DESC, r.reason
