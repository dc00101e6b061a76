-- The outputs page filtered by template and feedback: one template's thumbs up (or down), newest
-- first, without reading its other rated outputs or other templates' ones. Only rated rows are
-- indexed, so a job's status changes never write to it.

CREATE INDEX llm_outputs_rated_template_idx ON llm_outputs (md5(template), feedback, id DESC)
    WHERE feedback <> 'none';
