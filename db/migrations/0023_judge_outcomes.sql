-- What each judge verdict says, read from the judge's own output: pass or fail (its parsed,
-- schema-valid answer), no verdict (the job failed, or its answer did not validate), or waiting
-- (the job is pending or processing). Every reader of verdicts reads this one definition.
CREATE VIEW judge_outcomes AS
SELECT jv.judge_id, jv.output_id, jv.judge_output_id, jv.created_at,
       CASE
           WHEN j.status IN ('pending', 'processing') THEN 'waiting'
           WHEN j.status = 'completed' AND j.schema_valid IS TRUE
                AND j.parsed_output ->> 'verdict' IN ('pass', 'fail')
               THEN j.parsed_output ->> 'verdict'
           ELSE 'no verdict'
       END AS outcome,
       CASE WHEN j.status = 'completed' AND j.schema_valid IS TRUE
            THEN j.parsed_output ->> 'reason' END AS reason,
       CASE WHEN j.status = 'failed' THEN j.error_message
            WHEN j.status = 'completed' AND j.schema_valid IS NOT TRUE
                THEN 'the answer is not a verdict of the schema' END AS error_message
  FROM judge_verdicts AS jv
  JOIN llm_outputs AS j ON j.id = jv.judge_output_id;
