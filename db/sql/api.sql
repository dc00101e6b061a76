-- Queries of the HTTP API's own tables (rate limit, idempotency keys) and its health check.
-- Clock times use clock_timestamp(): a request may wait on a row lock, and its window must be
-- judged at the moment it gets the row, not when its transaction began.

-- hit_rate_limit --
-- Count one accepted request of a user in its current window; no row when the window is full
INSERT INTO api_rate_limits AS rl (user_id, window_start, hits)
VALUES (%(user_id)s, clock_timestamp(), 1)
ON CONFLICT (user_id) DO UPDATE
   SET window_start = CASE
           WHEN rl.window_start <= clock_timestamp() - make_interval(secs => %(window_seconds)s)
           THEN clock_timestamp() ELSE rl.window_start END,
       hits = CASE
           WHEN rl.window_start <= clock_timestamp() - make_interval(secs => %(window_seconds)s)
           THEN 1 ELSE rl.hits + 1 END
 WHERE rl.window_start <= clock_timestamp() - make_interval(secs => %(window_seconds)s)
    OR rl.hits < %(limit)s
RETURNING hits

-- rate_limit_retry_after --
-- Whole seconds until a user's current window ends (at least 1)
SELECT GREATEST(1, ceil(extract(epoch FROM
           window_start + make_interval(secs => %(window_seconds)s) - clock_timestamp())))::int
       AS seconds
  FROM api_rate_limits
 WHERE user_id = %(user_id)s

-- claim_idempotency_key --
-- Reserve a key for this request, taking it over when it has expired; no row when it is live (a
-- holder still at work is waited for). The user's other expired keys are forgotten on the way
WITH forgotten AS (
    DELETE FROM api_idempotency_keys
     WHERE user_id = %(user_id)s AND key <> %(key)s
       AND created_at < clock_timestamp() - make_interval(secs => %(ttl_seconds)s)
)
INSERT INTO api_idempotency_keys AS k (user_id, key, request_hash)
VALUES (%(user_id)s, %(key)s, %(request_hash)s)
ON CONFLICT (user_id, key) DO UPDATE
   SET request_hash = EXCLUDED.request_hash, status_code = NULL, response = NULL,
       created_at = EXCLUDED.created_at
 WHERE k.created_at < clock_timestamp() - make_interval(secs => %(ttl_seconds)s)
RETURNING key

-- get_idempotency_key --
-- One stored idempotency key with the answer it was given
SELECT * FROM api_idempotency_keys WHERE user_id = %(user_id)s AND key = %(key)s

-- store_idempotent_response --
-- Keep the answer given to the request that holds a key
UPDATE api_idempotency_keys
   SET status_code = %(status_code)s, response = %(response)s
 WHERE user_id = %(user_id)s AND key = %(key)s

-- api_health --
-- Whether the schema is in place: our tables and procrastinate's job table
SELECT to_regclass('llm_outputs') IS NOT NULL
       AND to_regclass('api_idempotency_keys') IS NOT NULL AS database,
       to_regclass('procrastinate_jobs') IS NOT NULL AS queue
