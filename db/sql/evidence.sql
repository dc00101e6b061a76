-- Comparisons, preferences, the prompt template library, budgets and the leaderboard.

-- insert_prompt_template --
-- A named template (its versions follow); nothing when the name exists
INSERT INTO prompt_templates (name, owner_id) VALUES (%(name)s, %(owner_id)s)
ON CONFLICT (name) DO NOTHING
RETURNING *

-- lock_prompt_template --
-- A named template, locked until the end of the transaction (to number a new version)
SELECT * FROM prompt_templates WHERE name = %(name)s FOR UPDATE

-- insert_template_version --
-- The next version of a template (with the JSON Schema its outputs answer to, if any)
INSERT INTO prompt_template_versions (template_id, version, body, note, created_by, json_schema)
SELECT %(template_id)s, COALESCE(max(version), 0) + 1, %(body)s, %(note)s, %(created_by)s,
       %(json_schema)s
  FROM prompt_template_versions WHERE template_id = %(template_id)s
RETURNING *

-- get_template_version --
-- One version of a named template (the latest when version is NULL)
SELECT v.*, t.name, t.owner_id
  FROM prompt_template_versions AS v JOIN prompt_templates AS t ON t.id = v.template_id
 WHERE t.name = %(name)s AND (%(version)s::integer IS NULL OR v.version = %(version)s)
 ORDER BY v.version DESC
 LIMIT 1

-- get_template_version_by_id --
-- One template version by its id, with the template's name
SELECT v.*, t.name, t.owner_id
  FROM prompt_template_versions AS v JOIN prompt_templates AS t ON t.id = v.template_id
 WHERE v.id = %(id)s

-- list_prompt_templates --
-- Every named template with its latest version
SELECT DISTINCT ON (t.id) v.*, t.name, t.owner_id
  FROM prompt_templates AS t JOIN prompt_template_versions AS v ON v.template_id = t.id
 ORDER BY t.id, v.version DESC

-- template_versions --
-- Every version of a named template, newest first
SELECT v.*, t.name, t.owner_id
  FROM prompt_template_versions AS v JOIN prompt_templates AS t ON t.id = v.template_id
 WHERE t.name = %(name)s
 ORDER BY v.version DESC

-- insert_comparison --
-- A comparison group (with the JSON Schema every answer is given, if any)
INSERT INTO comparisons (user_id, blind, json_schema)
VALUES (%(user_id)s, %(blind)s, %(json_schema)s)
RETURNING *

-- get_comparison --
-- One comparison; when viewer_id is given, only if that user owns it
SELECT * FROM comparisons
 WHERE id = %(id)s AND (%(viewer_id)s::bigint IS NULL OR user_id = %(viewer_id)s)

-- comparison_outputs --
-- The outputs of a comparison, in the order they were made
SELECT * FROM llm_outputs WHERE comparison_id = %(id)s ORDER BY id

-- set_comparison_output --
-- Attach an output to its comparison
UPDATE llm_outputs SET comparison_id = %(comparison_id)s WHERE id = ANY(%(ids)s)

-- list_comparisons --
-- A user's most recent comparisons, newest first: their answers' progress, models, template
-- (its first 200 characters) and whether a pick is recorded
SELECT c.id, c.user_id, c.blind, c.created_at,
       count(o.id) AS answers,
       count(o.id) FILTER (WHERE o.status IN ('completed', 'failed')) AS finished,
       COALESCE(array_agg(o.model ORDER BY o.id) FILTER (WHERE o.id IS NOT NULL), '{}') AS models,
       left(min(o.template), 200) AS template,
       EXISTS (SELECT 1 FROM preferences AS p WHERE p.comparison_id = c.id) AS picked
  FROM (SELECT * FROM comparisons WHERE user_id = %(user_id)s
         ORDER BY id DESC LIMIT %(limit)s) AS c
  LEFT JOIN llm_outputs AS o ON o.comparison_id = c.id
 GROUP BY c.id, c.user_id, c.blind, c.created_at
 ORDER BY c.id DESC

-- clear_preferences --
-- Forget a comparison's judgement (before recording a new one)
DELETE FROM preferences WHERE comparison_id = %(comparison_id)s

-- insert_preference --
-- One pairwise judgement
INSERT INTO preferences (comparison_id, user_id, output_a, output_b, outcome)
VALUES (%(comparison_id)s, %(user_id)s, %(output_a)s, %(output_b)s, %(outcome)s)

-- comparison_preferences --
-- The pairwise judgements of a comparison
SELECT * FROM preferences WHERE comparison_id = %(comparison_id)s ORDER BY id

-- set_user_budget --
-- A user's monthly budget (NULL: none)
UPDATE users SET monthly_budget = %(budget)s WHERE name = %(name)s RETURNING *

-- month_spend --
-- What a user's outputs created since the start of this month (UTC) have cost
SELECT COALESCE(sum(cost), 0) AS spent FROM llm_outputs
 WHERE user_id = %(user_id)s AND created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'

-- model_typical_completion --
-- The median completion length of a model's recent answers (NULL when it has none)
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY completion_tokens) AS tokens
  FROM (SELECT completion_tokens FROM llm_outputs
         WHERE model = %(model)s AND status = 'completed' AND completion_tokens IS NOT NULL
         ORDER BY created_at DESC LIMIT 50) AS recent

-- leaderboard --
-- Per model over the scoped outputs: feedback counts, pairwise results, median latency and cost
WITH scoped AS (
    SELECT o.id, o.model, o.status, o.feedback, o.latency_ms, o.cost
      FROM llm_outputs AS o
      LEFT JOIN prompt_template_versions AS v ON v.id = o.template_version_id
     WHERE (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
       AND (%(template_id)s::bigint IS NULL OR v.template_id = %(template_id)s)
       AND (%(version)s::integer IS NULL OR v.version = %(version)s)
       AND (%(created_after)s::timestamptz IS NULL OR o.created_at >= %(created_after)s)
       AND (%(created_before)s::timestamptz IS NULL OR o.created_at < %(created_before)s)
), per_model AS (
    SELECT model,
           count(*) AS outputs,
           count(*) FILTER (WHERE feedback = 'thumbs_up') AS thumbs_up,
           count(*) FILTER (WHERE feedback = 'thumbs_down') AS thumbs_down,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
               FILTER (WHERE status = 'completed') AS median_latency_ms,
           avg(cost) FILTER (WHERE status = 'completed') AS cost_per_output,
           sum(cost) AS total_cost
      FROM scoped GROUP BY model
), sides AS (
    SELECT a.model, CASE p.outcome WHEN 'a' THEN 1.0 WHEN 'tie' THEN 0.5 ELSE 0.0 END AS score
      FROM preferences AS p JOIN scoped AS a ON a.id = p.output_a
    UNION ALL
    SELECT b.model, CASE p.outcome WHEN 'b' THEN 1.0 WHEN 'tie' THEN 0.5 ELSE 0.0 END AS score
      FROM preferences AS p JOIN scoped AS b ON b.id = p.output_b
), pairwise AS (
    SELECT model, count(*) AS pairs, sum(score) AS pair_score FROM sides GROUP BY model
)
SELECT per_model.*, COALESCE(pairwise.pairs, 0) AS pairs,
       COALESCE(pairwise.pair_score, 0) AS pair_score
  FROM per_model LEFT JOIN pairwise USING (model)
 ORDER BY model

-- cost_over_time --
-- Cost per time bucket (hour or day, UTC), model and user over the scoped outputs
SELECT date_trunc(%(bucket)s, o.created_at AT TIME ZONE 'UTC') AS bucket, o.model,
       users.name AS user_name, count(*) AS outputs, COALESCE(sum(o.cost), 0) AS cost
  FROM llm_outputs AS o JOIN users ON users.id = o.user_id
 WHERE (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
   AND (%(created_after)s::timestamptz IS NULL OR o.created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR o.created_at < %(created_before)s)
   AND (%(model)s::text IS NULL OR o.model = %(model)s)
   AND (%(template)s::text IS NULL
        OR (md5(o.template) = md5(%(template)s) AND o.template = %(template)s))
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3
