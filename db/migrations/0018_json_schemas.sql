-- JSON Schemas of json outputs: the schema an output's answer must validate against (checked
-- when it was submitted: tasks/llm/schemas.py), and how its answer fared: schema_valid is true
-- once an answer validated, false when the output failed because none did; schema_first_try
-- whether the first answer validated (false: it took a re-ask). Both NULL without a schema.

ALTER TABLE llm_outputs
    ADD COLUMN json_schema jsonb
        CHECK (json_schema IS NULL OR (format = 'json' AND jsonb_typeof(json_schema) = 'object')),
    ADD COLUMN schema_valid boolean,
    ADD COLUMN schema_first_try boolean;
