-- The model catalog: what the workers can serve (see migration 0015).

-- catalog_publish_worker --
-- A worker's entry, new or seen again
INSERT INTO llm_catalog_workers AS w (worker, host)
VALUES (%(worker)s, %(host)s)
ON CONFLICT (worker) DO UPDATE SET seen_at = now()

-- catalog_clear_models --
-- The models a worker published before (replaced as a whole)
DELETE FROM llm_catalog_models WHERE worker = %(worker)s

-- catalog_insert_models --
-- A worker's models
INSERT INTO llm_catalog_models
    (worker, model, provider, listed, input_cost_per_token, output_cost_per_token, capabilities)
SELECT %(worker)s, m.model, m.provider, m.listed, m.input_cost, m.output_cost, m.capabilities
  FROM unnest(%(models)s::text[], %(providers)s::text[], %(listed)s::boolean[],
              %(input_costs)s::numeric[], %(output_costs)s::numeric[], %(capabilities)s::jsonb[])
       AS m (model, provider, listed, input_cost, output_cost, capabilities)

-- catalog_touch --
-- A worker seen again (with its heartbeat); no row: its entry was pruned and must be published
UPDATE llm_catalog_workers SET seen_at = now() WHERE worker = %(worker)s RETURNING worker

-- catalog_withdraw --
-- A worker that stops takes its models away
DELETE FROM llm_catalog_workers WHERE worker = %(worker)s

-- catalog_prune --
-- Entries of workers not seen for a while (killed ones never withdraw)
DELETE FROM llm_catalog_workers WHERE seen_at < now() - make_interval(secs => %(older_than)s)

-- catalog_find --
-- How a live worker serves a model: by its name, else by its provider's wildcard; the entry
-- that knows prices first, then the worker seen last
SELECT m.model, m.provider, m.listed, m.input_cost_per_token, m.output_cost_per_token,
       m.capabilities
  FROM llm_catalog_models AS m
  JOIN llm_catalog_workers AS w USING (worker)
 WHERE w.seen_at >= now() - make_interval(secs => %(fresh)s)
   AND m.model IN (%(model)s, %(wildcard)s)
 ORDER BY m.model = %(model)s DESC, m.input_cost_per_token IS NULL, w.seen_at DESC
 LIMIT 1

-- catalog_listed --
-- The models the live workers offer in lists, each once, with the prices one of them knows
SELECT DISTINCT ON (m.model)
       m.model, m.provider, m.listed, m.input_cost_per_token, m.output_cost_per_token,
       m.capabilities
  FROM llm_catalog_models AS m
  JOIN llm_catalog_workers AS w USING (worker)
 WHERE w.seen_at >= now() - make_interval(secs => %(fresh)s)
   AND m.listed
 ORDER BY m.model, m.input_cost_per_token IS NULL, w.seen_at DESC

-- catalog_live_workers --
-- How many workers published their models lately
SELECT count(*) AS n FROM llm_catalog_workers
 WHERE seen_at >= now() - make_interval(secs => %(fresh)s)
