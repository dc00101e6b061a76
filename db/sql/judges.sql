-- LLM judges: their definitions, the outputs a run covers, their verdicts (read from the judge's
-- own outputs through the judge_outcomes view), and calibration against people's thumbs.

-- list_judges --
-- Every judge by name, with who defined it
SELECT judges.*, users.name AS created_by_name
  FROM judges LEFT JOIN users ON users.id = judges.created_by
 ORDER BY judges.name, judges.id

-- get_judge --
-- One judge
SELECT judges.*, users.name AS created_by_name
  FROM judges LEFT JOIN users ON users.id = judges.created_by
 WHERE judges.id = %(id)s

-- lock_judge --
-- Hold a judge until the transaction ends: its runs and changes go one at a time
SELECT id FROM judges WHERE id = %(id)s FOR UPDATE

-- insert_judge --
-- Define a judge
INSERT INTO judges (name, model, rubric, created_by)
VALUES (%(name)s, %(model)s, %(rubric)s, %(created_by)s)
RETURNING id

-- update_judge --
-- Change a judge's name, model and rubric
UPDATE judges SET name = %(name)s, model = %(model)s, rubric = %(rubric)s, updated_at = now()
 WHERE id = %(id)s
RETURNING id

-- delete_judge --
-- Delete a judge and its verdicts (the judge's outputs stay, as any output)
DELETE FROM judges WHERE id = %(id)s RETURNING id

-- judge_scope --
-- The completed outputs a run covers, newest first, at most `limit`: never a judge's own output
-- nor an answer of a blind comparison not yet picked (its verdicts would name its model), and
-- those this judge already judged only when `again`
SELECT o.id, o.model, o.prompt, o.raw_response, o.corrected_answer, o.context
  FROM llm_outputs AS o
 WHERE o.status = 'completed'
   AND (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
   AND (%(model)s::text IS NULL OR o.model = %(model)s)
   AND (%(template_version_id)s::bigint IS NULL
        OR o.template_version_id = %(template_version_id)s)
   AND (%(template)s::text IS NULL
        OR (md5(o.template) = md5(%(template)s) AND o.template = %(template)s))
   AND (%(batch_id)s::bigint IS NULL OR o.batch_id = %(batch_id)s)
   AND (%(created_after)s::timestamptz IS NULL OR o.created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR o.created_at < %(created_before)s)
   AND (NOT %(rated_only)s OR o.feedback <> 'none')
   AND NOT EXISTS (SELECT 1 FROM judge_verdicts AS own WHERE own.judge_output_id = o.id)
   AND NOT (o.comparison_id IS NOT NULL AND EXISTS (
           SELECT 1 FROM comparisons AS c
            WHERE c.id = o.comparison_id AND c.blind
              AND NOT EXISTS (SELECT 1 FROM preferences AS p WHERE p.comparison_id = c.id)))
   AND (%(again)s OR NOT EXISTS (
           SELECT 1 FROM judge_verdicts AS jv
            WHERE jv.judge_id = %(judge_id)s AND jv.output_id = o.id))
 ORDER BY o.id DESC
 LIMIT %(limit)s

-- put_judge_verdicts --
-- Point each judged output's verdict at its judge output (judging again replaces the verdict)
INSERT INTO judge_verdicts (judge_id, output_id, judge_output_id)
SELECT %(judge_id)s, judged, judging
  FROM unnest(%(output_ids)s::bigint[], %(judge_output_ids)s::bigint[]) AS t (judged, judging)
ON CONFLICT (judge_id, output_id)
DO UPDATE SET judge_output_id = EXCLUDED.judge_output_id, created_at = now()

-- judge_outcome_counts --
-- How many of a judge's verdicts say pass, fail, no verdict or waiting (on user_id's outputs
-- when given)
SELECT v.outcome, count(*) AS n
  FROM judge_outcomes AS v JOIN llm_outputs AS o ON o.id = v.output_id
 WHERE v.judge_id = %(judge_id)s
   AND (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
 GROUP BY v.outcome

-- judge_verdicts_page --
-- A judge's verdicts, newest judged output first, one keyset page (output ids below before_id)
SELECT v.*, o.model, o.user_id, o.feedback, judges.name AS judge_name,
       judges.model AS judge_model
  FROM judge_outcomes AS v JOIN llm_outputs AS o ON o.id = v.output_id
  JOIN judges ON judges.id = v.judge_id
 WHERE v.judge_id = %(judge_id)s
   AND (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
   AND (%(outcome)s::text IS NULL OR v.outcome = %(outcome)s)
   AND (%(before_id)s::bigint IS NULL OR v.output_id < %(before_id)s)
 ORDER BY v.output_id DESC
 LIMIT %(limit)s

-- output_verdicts --
-- Every judge's verdict on one output, by judge name
SELECT v.*, judges.name AS judge_name, judges.model AS judge_model
  FROM judge_outcomes AS v JOIN judges ON judges.id = v.judge_id
 WHERE v.output_id = %(output_id)s
 ORDER BY judges.name, judges.id

-- judge_calibration --
-- Per model, on the outputs with both a person's thumb and a pass or fail from the judge: the
-- four cells of the confusion matrix (thumbs up stands for pass)
SELECT o.model,
       count(*) FILTER (WHERE o.feedback = 'thumbs_up' AND v.outcome = 'pass') AS up_pass,
       count(*) FILTER (WHERE o.feedback = 'thumbs_up' AND v.outcome = 'fail') AS up_fail,
       count(*) FILTER (WHERE o.feedback = 'thumbs_down' AND v.outcome = 'pass') AS down_pass,
       count(*) FILTER (WHERE o.feedback = 'thumbs_down' AND v.outcome = 'fail') AS down_fail
  FROM judge_outcomes AS v JOIN llm_outputs AS o ON o.id = v.output_id
 WHERE v.judge_id = %(judge_id)s
   AND v.outcome IN ('pass', 'fail')
   AND o.feedback IN ('thumbs_up', 'thumbs_down')
   AND (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
 GROUP BY o.model
 ORDER BY o.model

-- leaderboard_judged --
-- Per model over the leaderboard's scoped outputs, the judge's pass and fail verdicts
SELECT o.model,
       count(*) FILTER (WHERE v.outcome = 'pass') AS judge_pass,
       count(*) FILTER (WHERE v.outcome = 'fail') AS judge_fail
  FROM judge_outcomes AS v
  JOIN llm_outputs AS o ON o.id = v.output_id
  LEFT JOIN prompt_template_versions AS tv ON tv.id = o.template_version_id
 WHERE v.judge_id = %(judge_id)s
   AND v.outcome IN ('pass', 'fail')
   AND (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
   AND (%(template_id)s::bigint IS NULL OR tv.template_id = %(template_id)s)
   AND (%(version)s::integer IS NULL OR tv.version = %(version)s)
   AND (%(created_after)s::timestamptz IS NULL OR o.created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR o.created_at < %(created_before)s)
 GROUP BY o.model
