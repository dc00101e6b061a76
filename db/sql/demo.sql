-- Demo data: a month of finished work written at once, and its removal.

-- demo_state --
-- Whether demo rows exist, whether a user other than the demo one holds its name, and whether
-- the database has any output at all
SELECT EXISTS (SELECT 1 FROM users WHERE demo) AS loaded,
       EXISTS (SELECT 1 FROM users WHERE name = %(name)s AND NOT demo) AS name_taken,
       EXISTS (SELECT 1 FROM llm_outputs) AS has_outputs

-- demo_insert_user --
-- The demo user
INSERT INTO users (name, role, created_at, demo)
VALUES (%(name)s, 'analyst', %(created_at)s, true)
RETURNING id

-- demo_insert_template --
-- A library template of the demo
INSERT INTO prompt_templates (name, owner_id, created_at, demo)
VALUES (%(name)s, %(owner_id)s, %(created_at)s, true)
RETURNING id

-- demo_insert_template_version --
-- One version of a demo template
INSERT INTO prompt_template_versions (template_id, version, body, note, created_by, created_at)
VALUES (%(template_id)s, %(version)s, %(body)s, %(note)s, %(created_by)s, %(created_at)s)
RETURNING id

-- demo_insert_comparison --
-- A comparison of the demo
INSERT INTO comparisons (user_id, blind, created_at, demo)
VALUES (%(user_id)s, %(blind)s, %(created_at)s, true)
RETURNING id

-- demo_insert_batch --
-- The finished batch of the demo
INSERT INTO batches (user_id, name, template, model, format, queue, columns, created_at, demo)
VALUES (%(user_id)s, %(name)s, %(template)s, %(model)s, %(format)s, %(queue)s, %(columns)s,
        %(created_at)s, true)
RETURNING id

-- demo_insert_output --
-- One finished output of the demo (no job: nothing is left for a worker)
INSERT INTO llm_outputs (user_id, template, model, context, format, queue, kind, parent_id,
                         status, prompt, raw_response, parsed_output, feedback, attempts,
                         error_message, prompt_tokens, completion_tokens, cost, latency_ms,
                         created_at, started_at, completed_at, template_version_id,
                         comparison_id, batch_id, batch_row, feedback_reasons, feedback_comment,
                         corrected_answer, json_schema, schema_valid, schema_first_try, demo)
VALUES (%(user_id)s, %(template)s, %(model)s, %(context)s, %(format)s, %(queue)s, %(kind)s,
        %(parent_id)s, %(status)s, %(prompt)s, %(raw_response)s, %(parsed_output)s,
        %(feedback)s, %(attempts)s, %(error_message)s, %(prompt_tokens)s, %(completion_tokens)s,
        %(cost)s, %(latency_ms)s, %(created_at)s, %(started_at)s, %(completed_at)s,
        %(template_version_id)s, %(comparison_id)s, %(batch_id)s, %(batch_row)s,
        %(feedback_reasons)s, %(feedback_comment)s, %(corrected_answer)s, %(json_schema)s,
        %(schema_valid)s, %(schema_first_try)s, true)
RETURNING id

-- demo_insert_feedback_event --
-- Feedback given on a demo output: a thumb with its reasons, comment and corrected answer
INSERT INTO feedback_events (output_id, user_id, old_value, new_value, created_at, reasons,
                             comment, corrected_answer, changed)
VALUES (%(output_id)s, %(user_id)s, 'none', %(new_value)s, %(created_at)s, %(reasons)s,
        %(comment)s, %(corrected_answer)s, %(changed)s)

-- demo_insert_judge --
-- The demo's LLM judge
INSERT INTO judges (name, model, rubric, created_by, created_at, updated_at, demo)
VALUES (%(name)s, %(model)s, %(rubric)s, %(created_by)s, %(created_at)s, %(created_at)s, true)
RETURNING id

-- demo_insert_judge_verdict --
-- A verdict of the demo judge: the output judged and the judge's own output
INSERT INTO judge_verdicts (judge_id, output_id, judge_output_id, created_at)
VALUES (%(judge_id)s, %(output_id)s, %(judge_output_id)s, %(created_at)s)

-- demo_insert_review_queue --
-- The demo's review queue
INSERT INTO review_queues (name, owner_id, scope, blind, created_at, demo)
VALUES (%(name)s, %(owner_id)s, %(scope)s, %(blind)s, %(created_at)s, true)
RETURNING id

-- demo_insert_review_item --
-- An output in the demo review queue
INSERT INTO review_items (queue_id, output_id, position)
VALUES (%(queue_id)s, %(output_id)s, %(position)s)

-- demo_insert_review_mark --
-- What the demo user said of a reviewed item
INSERT INTO review_marks (queue_id, output_id, user_id, feedback, reasons, reviewed_at)
VALUES (%(queue_id)s, %(output_id)s, %(user_id)s, %(feedback)s, %(reasons)s, %(reviewed_at)s)

-- demo_insert_preference --
-- A pick in a demo comparison
INSERT INTO preferences (comparison_id, user_id, output_a, output_b, outcome, created_at)
VALUES (%(comparison_id)s, %(user_id)s, %(output_a)s, %(output_b)s, %(outcome)s, %(created_at)s)

-- demo_delete_review_queues --
-- The demo review queues, with their items, reservations and marks
WITH gone AS (DELETE FROM review_queues WHERE demo RETURNING 1) SELECT count(*) AS n FROM gone

-- demo_delete_judges --
-- The demo judges (their verdicts go with them, and with the outputs)
WITH gone AS (DELETE FROM judges WHERE demo RETURNING 1) SELECT count(*) AS n FROM gone

-- demo_delete_outputs --
-- The demo outputs (their feedback events, preferences and verdicts go with them)
WITH gone AS (DELETE FROM llm_outputs WHERE demo RETURNING 1) SELECT count(*) AS n FROM gone

-- demo_delete_comparisons --
-- The demo comparisons
WITH gone AS (DELETE FROM comparisons WHERE demo RETURNING 1) SELECT count(*) AS n FROM gone

-- demo_delete_batches --
-- The demo batch
WITH gone AS (DELETE FROM batches WHERE demo RETURNING 1) SELECT count(*) AS n FROM gone

-- demo_delete_templates --
-- The demo library templates, with their versions
WITH gone AS (DELETE FROM prompt_templates WHERE demo RETURNING 1) SELECT count(*) AS n FROM gone

-- demo_delete_users --
-- The demo user, unless someone has since done real work as it (that work stays, and so does it)
WITH gone AS (
    DELETE FROM users AS u
     WHERE u.demo
       AND NOT EXISTS (SELECT 1 FROM llm_outputs AS o WHERE o.user_id = u.id)
       AND NOT EXISTS (SELECT 1 FROM comparisons AS c WHERE c.user_id = u.id)
       AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.user_id = u.id)
       AND NOT EXISTS (SELECT 1 FROM review_queues AS q WHERE q.owner_id = u.id)
    RETURNING 1
) SELECT count(*) AS n FROM gone
