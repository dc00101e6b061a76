-- Review queues: a scope of completed outputs fixed when the queue is made, reviewed one after
-- another by reviewers who each hold an item for a while.

-- review_scope_outputs --
-- The completed outputs a new queue takes, newest first (at most limit): one user's (NULL: anyone's),
-- filtered. Filtered by model, the answers of a blind comparison not yet judged are left out: the
-- filter would tell them apart
SELECT o.id
  FROM llm_outputs AS o
 WHERE o.status = 'completed'
   AND (%(user_id)s::bigint IS NULL OR o.user_id = %(user_id)s)
   AND (%(model)s::text IS NULL
        OR (o.model = %(model)s
            AND NOT (o.comparison_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM comparisons AS c
                 WHERE c.id = o.comparison_id AND c.blind
                   AND NOT EXISTS (SELECT 1 FROM preferences AS p WHERE p.comparison_id = c.id)))))
   AND (%(template_version_id)s::bigint IS NULL
        OR o.template_version_id = %(template_version_id)s)
   AND (%(template)s::text IS NULL
        OR (md5(o.template) = md5(%(template)s) AND o.template = %(template)s))
   AND (%(batch_id)s::bigint IS NULL OR o.batch_id = %(batch_id)s)
   AND (%(since)s::timestamptz IS NULL OR o.created_at >= %(since)s)
   AND (%(until)s::timestamptz IS NULL OR o.created_at < %(until)s)
   AND (%(only)s::text IS NULL
        OR (%(only)s = 'unrated' AND o.feedback = 'none')
        OR (%(only)s = 'thumbs_down' AND o.feedback = 'thumbs_down'))
 ORDER BY o.created_at DESC, o.id DESC
 LIMIT %(limit)s

-- insert_review_queue --
-- A new review queue
INSERT INTO review_queues (name, owner_id, scope, blind, reviewers_per_item)
VALUES (%(name)s, %(owner_id)s, %(scope)s, %(blind)s, %(reviewers_per_item)s)
RETURNING id

-- insert_review_items --
-- A queue's items, positioned in the order given (from 1)
INSERT INTO review_items (queue_id, output_id, position)
SELECT %(queue_id)s, t.id, t.n
  FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS t(id, n)

-- get_review_queue --
-- One queue with its counts; when viewer_id is given, only if that user owns it. reviewed: items
-- with as many reviews (marks not skipped) as the queue asks for; held: items held now
SELECT q.*, users.name AS owner_name,
       (SELECT count(*) FROM review_items AS i WHERE i.queue_id = q.id) AS items,
       (SELECT count(*) FROM (
            SELECT 1 FROM review_marks AS m
             WHERE m.queue_id = q.id AND NOT m.skipped
             GROUP BY m.output_id
            HAVING count(*) >= q.reviewers_per_item) AS done) AS reviewed,
       (SELECT count(DISTINCT r.output_id) FROM review_reservations AS r
         WHERE r.queue_id = q.id AND r.expires_at > now()) AS held
  FROM review_queues AS q JOIN users ON users.id = q.owner_id
 WHERE q.id = %(id)s AND (%(viewer_id)s::bigint IS NULL OR q.owner_id = %(viewer_id)s)

-- list_review_queues --
-- Queues newest first with their counts (as get_review_queue): one owner's, or everyone's when
-- owner_id is NULL
SELECT q.*, users.name AS owner_name,
       (SELECT count(*) FROM review_items AS i WHERE i.queue_id = q.id) AS items,
       (SELECT count(*) FROM (
            SELECT 1 FROM review_marks AS m
             WHERE m.queue_id = q.id AND NOT m.skipped
             GROUP BY m.output_id
            HAVING count(*) >= q.reviewers_per_item) AS done) AS reviewed,
       (SELECT count(DISTINCT r.output_id) FROM review_reservations AS r
         WHERE r.queue_id = q.id AND r.expires_at > now()) AS held
  FROM review_queues AS q JOIN users ON users.id = q.owner_id
 WHERE (%(owner_id)s::bigint IS NULL OR q.owner_id = %(owner_id)s)
 ORDER BY q.id DESC
 LIMIT %(limit)s

-- lock_review_queue --
-- Until the transaction ends, no other reviewer picks or marks an item of this queue: each then
-- reads what the one before committed
SELECT id FROM review_queues WHERE id = %(id)s FOR NO KEY UPDATE

-- next_review_item --
-- The item a reviewer works on: their own live reservation if any; else the first item by
-- position they have not marked whose reviews (marks not skipped) and others' live reservations
-- are fewer than per_item, reserved for them until now + hold seconds. Nothing when none is left
WITH mine AS (
    SELECT r.output_id, r.expires_at
      FROM review_reservations AS r
     WHERE r.queue_id = %(queue_id)s AND r.user_id = %(user_id)s AND r.expires_at > now()
     ORDER BY r.expires_at DESC
     LIMIT 1
), pick AS (
    SELECT i.output_id
      FROM review_items AS i
     WHERE i.queue_id = %(queue_id)s
       AND NOT EXISTS (SELECT 1 FROM mine)
       AND NOT EXISTS (
           SELECT 1 FROM review_marks AS m
            WHERE m.queue_id = i.queue_id AND m.output_id = i.output_id
              AND m.user_id = %(user_id)s)
       AND (SELECT count(*) FROM review_marks AS m
             WHERE m.queue_id = i.queue_id AND m.output_id = i.output_id AND NOT m.skipped)
         + (SELECT count(*) FROM review_reservations AS r
             WHERE r.queue_id = i.queue_id AND r.output_id = i.output_id
               AND r.user_id <> %(user_id)s AND r.expires_at > now())
         < %(per_item)s
     ORDER BY i.position
     LIMIT 1
       FOR UPDATE OF i SKIP LOCKED
), reserved AS (
    INSERT INTO review_reservations (queue_id, output_id, user_id, expires_at)
    SELECT %(queue_id)s, pick.output_id, %(user_id)s, now() + make_interval(secs => %(hold)s)
      FROM pick
        ON CONFLICT (queue_id, output_id, user_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
    RETURNING output_id, expires_at
)
SELECT output_id, expires_at AS reserved_until FROM mine
 UNION ALL
SELECT output_id, expires_at FROM reserved

-- review_item_state --
-- Where an item of a queue stands for one reviewer: its position (nothing when the output is not
-- in the queue), the reviewer's live reservation, their mark, and its reviews (marks not skipped)
SELECT i.position,
       (SELECT r.expires_at FROM review_reservations AS r
         WHERE r.queue_id = i.queue_id AND r.output_id = i.output_id
           AND r.user_id = %(user_id)s AND r.expires_at > now()) AS reserved_until,
       m.feedback AS my_feedback, m.reasons AS my_reasons, m.skipped AS my_skipped,
       (SELECT count(*) FROM review_marks AS n
         WHERE n.queue_id = i.queue_id AND n.output_id = i.output_id AND NOT n.skipped)
       AS reviews
  FROM review_items AS i
  LEFT JOIN review_marks AS m
    ON m.queue_id = i.queue_id AND m.output_id = i.output_id AND m.user_id = %(user_id)s
 WHERE i.queue_id = %(queue_id)s AND i.output_id = %(output_id)s

-- save_review_mark --
-- A reviewer's mark on an item, and their hold on it released. A second review replaces the
-- first; its thumbs or reasons left out (NULL) are kept from a first that was not a skip
WITH released AS (
    DELETE FROM review_reservations
     WHERE queue_id = %(queue_id)s AND output_id = %(output_id)s AND user_id = %(user_id)s
)
INSERT INTO review_marks (queue_id, output_id, user_id, feedback, reasons, skipped)
VALUES (%(queue_id)s, %(output_id)s, %(user_id)s, coalesce(%(feedback)s::text, 'none'),
        coalesce(%(reasons)s::text[], '{}'), %(skipped)s)
    ON CONFLICT (queue_id, output_id, user_id) DO UPDATE
   SET feedback = coalesce(%(feedback)s::text,
                           CASE WHEN review_marks.skipped THEN 'none' ELSE review_marks.feedback END),
       reasons = coalesce(%(reasons)s::text[],
                          CASE WHEN review_marks.skipped THEN '{}' ELSE review_marks.reasons END),
       skipped = EXCLUDED.skipped,
       reviewed_at = now()
RETURNING *

-- review_progress --
-- How far a queue is for one reviewer: its items, those fully reviewed (as many marks not skipped
-- as per_item asks), the reviewer's reviews and skips, items held now and all reviews given
WITH per_item AS (
    SELECT m.output_id, count(*) FILTER (WHERE NOT m.skipped) AS reviews
      FROM review_marks AS m
     WHERE m.queue_id = %(queue_id)s
     GROUP BY m.output_id
)
SELECT (SELECT count(*) FROM review_items WHERE queue_id = %(queue_id)s) AS items,
       (SELECT count(*) FROM per_item WHERE reviews >= %(per_item)s) AS reviewed,
       (SELECT COALESCE(sum(reviews), 0) FROM per_item) AS reviews,
       (SELECT count(*) FROM review_marks
         WHERE queue_id = %(queue_id)s AND user_id = %(user_id)s AND NOT skipped) AS mine,
       (SELECT count(*) FROM review_marks
         WHERE queue_id = %(queue_id)s AND user_id = %(user_id)s AND skipped) AS skipped,
       (SELECT count(DISTINCT output_id) FROM review_reservations
         WHERE queue_id = %(queue_id)s AND expires_at > now()) AS held

-- review_agreement --
-- Over the items of a queue with at least two thumbs (marks not skipped, thumbs up or down): how
-- many, how many all agree on, and the pairs of thumbs on one item and those that agree
WITH thumbs AS (
    SELECT m.output_id,
           count(*) FILTER (WHERE m.feedback = 'thumbs_up') AS ups,
           count(*) FILTER (WHERE m.feedback = 'thumbs_down') AS downs
      FROM review_marks AS m
     WHERE m.queue_id = %(queue_id)s AND NOT m.skipped
       AND m.feedback IN ('thumbs_up', 'thumbs_down')
     GROUP BY m.output_id
    HAVING count(*) >= 2
)
SELECT count(*) AS items,
       count(*) FILTER (WHERE ups = 0 OR downs = 0) AS unanimous,
       COALESCE(sum((ups + downs) * (ups + downs - 1) / 2), 0) AS pairs,
       COALESCE(sum(ups * (ups - 1) / 2 + downs * (downs - 1) / 2), 0) AS agreeing_pairs
  FROM thumbs
