-- JSON Schemas of json outputs: the schema an output's answer must validate against (checked
-- when it was submitted: tasks/llm/schemas.py), and how its answer fared: schema_valid is true
-- once an answer validated, false when the output failed because none did; schema_first_try
-- whether the first answer validated (false: it took a re-ask). Both NULL without a schema.
-- schema_errors: how the last answer of an output that failed so broke its schema, as a list of
-- {"path": "$.score", "message": "9 is greater than the maximum of 5"}.

ALTER TABLE llm_outputs
    ADD COLUMN json_schema jsonb
        CHECK (json_schema IS NULL OR (format = 'json' AND jsonb_typeof(json_schema) = 'object')),
    ADD COLUMN schema_valid boolean,
    ADD COLUMN schema_first_try boolean,
    ADD COLUMN schema_errors jsonb CHECK (schema_errors IS NULL OR jsonb_typeof(schema_errors) = 'array');
