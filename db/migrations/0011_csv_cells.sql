-- A text cell of a CSV file the server writes (COPY), safe to open in a spreadsheet: text starting
-- with = + - @, a tab or a carriage return gets a leading ' so it is shown, not run as a formula,
-- unless it is exactly a decimal number ("-0.5"). The rule of tasks/csvcells.py safe_cell.

CREATE FUNCTION llmjobs_csv_cell(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN left(value, 1) IN ('=', '+', '-', '@', E'\t', E'\r')
             AND value !~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$'
        THEN '''' || value
        ELSE value
    END
$$;
