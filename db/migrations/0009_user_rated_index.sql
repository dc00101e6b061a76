-- One user's rated outputs in a time range (their feedback CSV export) without reading everyone's
-- rated outputs or all of theirs. Only rated rows are indexed, so a job's status changes never
-- write to it.

CREATE INDEX llm_outputs_user_rated_idx ON llm_outputs (user_id, created_at)
    WHERE feedback <> 'none';
