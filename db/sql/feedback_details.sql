-- list_commented_outputs --
-- Outputs whose feedback comment contains some text (a LIKE pattern, its wildcards escaped with
-- backslash), newest first, filtered as list_outputs is, one keyset page (after before_id in this
-- order). Reads only the commented outputs (llm_outputs_commented_idx)
SELECT llm_outputs.*, users.name AS user_name,
       (llm_outputs.comparison_id IS NOT NULL AND EXISTS (
           SELECT 1 FROM comparisons AS c
            WHERE c.id = llm_outputs.comparison_id AND c.blind
              AND NOT EXISTS (SELECT 1 FROM preferences AS p WHERE p.comparison_id = c.id)))
       AS blind_pending
  FROM llm_outputs JOIN users ON users.id = llm_outputs.user_id
 WHERE llm_outputs.feedback_comment IS NOT NULL
   AND llm_outputs.feedback_comment ILIKE %(comment_pattern)s ESCAPE '\'
   AND (%(user_id)s::bigint IS NULL OR llm_outputs.user_id = %(user_id)s)
   AND (%(status)s::text IS NULL OR llm_outputs.status = %(status)s)
   AND (%(model)s::text IS NULL
        OR (llm_outputs.model = %(model)s
            AND NOT (llm_outputs.comparison_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM comparisons AS c
                 WHERE c.id = llm_outputs.comparison_id AND c.blind
                   AND NOT EXISTS (SELECT 1 FROM preferences AS p WHERE p.comparison_id = c.id)))))
   AND (%(format)s::text IS NULL OR llm_outputs.format = %(format)s)
   AND (%(feedback)s::text IS NULL OR llm_outputs.feedback = %(feedback)s)
   AND (%(template)s::text IS NULL
        OR (md5(llm_outputs.template) = md5(%(template)s) AND llm_outputs.template = %(template)s))
   AND (%(created_after)s::timestamptz IS NULL OR llm_outputs.created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR llm_outputs.created_at < %(created_before)s)
   AND (%(batch_id)s::bigint IS NULL OR llm_outputs.batch_id = %(batch_id)s)
   AND (%(before_id)s::bigint IS NULL
        OR (llm_outputs.created_at, llm_outputs.id) < (
            SELECT before.created_at, before.id FROM llm_outputs AS before
             WHERE before.id = %(before_id)s))
 ORDER BY llm_outputs.created_at DESC, llm_outputs.id DESC
 LIMIT %(limit)s

-- set_feedback_details --
-- Put reasons, a comment and a corrected answer on an output directly, recording no change (test
-- helpers and data imports; people's changes go through set_feedback)
UPDATE llm_outputs
   SET feedback_reasons = %(reasons)s::text[], feedback_comment = %(comment)s::text,
       corrected_answer = %(corrected_answer)s::text
 WHERE id = %(id)s
RETURNING id

-- recent_feedback_events --
-- The latest feedback changes of one output (at most limit), oldest first, with who made them
SELECT * FROM (
    SELECT feedback_events.*, users.name AS user_name
      FROM feedback_events JOIN users ON users.id = feedback_events.user_id
     WHERE output_id = %(output_id)s
     ORDER BY feedback_events.id DESC
     LIMIT %(limit)s
) AS latest
 ORDER BY id
