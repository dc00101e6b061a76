-- JSON Schemas beyond a single submission (migration 0018 put them on outputs): a library
-- template version may carry the schema its outputs answer to; an agent a default schema for its
-- json outputs (so only an agent whose default format is json holds one); a batch the schema of
-- all its rows (a json batch only); a comparison the schema given to every model's answer. Each
-- is checked when it is saved (tasks/llm/schemas.py) and copied onto the outputs it makes.
-- They are json, not jsonb, to keep the author's order of properties: a batch's results CSV has
-- a column per top-level property, in that order.

ALTER TABLE prompt_template_versions
    ADD COLUMN json_schema json
        CHECK (json_schema IS NULL OR json_typeof(json_schema) = 'object');

ALTER TABLE agents
    ADD COLUMN default_json_schema json
        CHECK (default_json_schema IS NULL
               OR (default_format = 'json' AND json_typeof(default_json_schema) = 'object'));

ALTER TABLE batches
    ADD COLUMN json_schema json
        CHECK (json_schema IS NULL OR (format = 'json' AND json_typeof(json_schema) = 'object'));

ALTER TABLE comparisons
    ADD COLUMN json_schema json
        CHECK (json_schema IS NULL OR json_typeof(json_schema) = 'object');
