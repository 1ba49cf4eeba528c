-- claim(p_id, p_partition, p_token, p_fingerprint, p_lock_ttl_ms, p_grace_ms) -> text
-- Atomically take a key, or report who holds it or what it holds. One call, one round trip.
--
--   p_id           record id
--   p_partition    opaque hash of the caller's scope (stored only)
--   p_token        random token of this claim
--   p_fingerprint  '' = do not compare
--   p_lock_ttl_ms  lease length, ms (> 0)
--   p_grace_ms     how long an in-progress row outlives its lease before it counts as absent, ms (>= 0)
--
-- Returns one text, its first character the outcome (the Redis store's letters):
--   'A' || takeover || fence  acquired; takeover '1' when an expired lease was taken over, else '0'; when the
--                             row has durable steps, then a newline and the steps as a JSON object (see step.sql)
--   'I' || retryAfterMs       in progress: time left on the live lease, >= 1
--   'C' || result             completed
--   'M'                       mismatch: stored and requested fingerprints are both non-empty and differ
--                             (also on a released row with steps: another input never resumes them)
--   'X' || reason             corrupt: the row was not written by this store (left untouched)
--
-- Timeline of one key (database clock):
--   absent/released/expired --claim A--> p(A, lease L) --complete A--> c (replayed until expires_at)
--                                           | L passes, nobody came: A may still renew (no) / complete (yes)
--                                           +--- claim B after L ---> p(B), new fence, A is "lost"
-- Placeholders: {{claim}} {{table}} {{fenceSeq}} {{check}} (see table.sql).
CREATE OR REPLACE FUNCTION {{claim}}(
  p_id text, p_partition text, p_token text, p_fingerprint text, p_lock_ttl_ms bigint, p_grace_ms bigint
) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  rec {{table}}%ROWTYPE;
  lease constant interval := p_lock_ttl_ms * interval '1 millisecond';
  grace constant interval := p_grace_ms * interval '1 millisecond';
  now_ts timestamptz;
  new_fence bigint;
  takeover boolean := false;
  reason text;
BEGIN
  -- The common cases without a row lock: a replay (a completed row never changes, it is only deleted once
  -- expired) and a fresh key (ON CONFLICT waits for a concurrent inserter, then does nothing).
  SELECT * INTO rec FROM {{table}} WHERE id = p_id;
  IF FOUND AND rec.state = 'c' AND rec.v = 1 AND rec.result IS NOT NULL AND rec.expires_at > clock_timestamp() THEN
    IF p_fingerprint <> '' AND rec.fingerprint <> '' AND p_fingerprint <> rec.fingerprint THEN
      RETURN 'M';
    END IF;
    RETURN 'C' || rec.result;
  END IF;

  LOOP
    IF NOT FOUND THEN
      now_ts := clock_timestamp();
      INSERT INTO {{table}} AS t (id, partition, v, state, token, fingerprint, fence, lease_until, expires_at)
      VALUES (p_id, p_partition, 1, 'p', p_token, p_fingerprint, nextval('{{fenceSeq}}'), now_ts + lease,
              now_ts + lease + grace)
      ON CONFLICT (id) DO NOTHING
      RETURNING t.fence INTO new_fence;
      IF FOUND THEN
        RETURN 'A0' || new_fence;
      END IF;
    END IF;
    -- A row exists (or a concurrent claim just committed one): lock it. It may vanish meanwhile (the sweep
    -- deleted it): then insert again.
    SELECT * INTO rec FROM {{table}} WHERE id = p_id FOR UPDATE;
    EXIT WHEN FOUND;
  END LOOP;

  reason := {{check}}(rec);
  IF reason IS NOT NULL THEN
    RETURN 'X' || reason;
  END IF;

  now_ts := clock_timestamp();
  IF rec.expires_at > now_ts THEN
    IF (rec.state IN ('c', 'p') OR rec.steps IS NOT NULL)
       AND p_fingerprint <> '' AND rec.fingerprint <> '' AND p_fingerprint <> rec.fingerprint THEN
      RETURN 'M';
    END IF;
    IF rec.state = 'c' THEN
      RETURN 'C' || rec.result;
    END IF;
    IF rec.state = 'p' THEN
      IF rec.lease_until > now_ts THEN
        RETURN 'I' || greatest(1, ceil(extract(epoch FROM rec.lease_until - now_ts) * 1000))::bigint;
      END IF;
      takeover := true;
    END IF;
    -- 'r' (released) behaves as absent, but hands its steps on.
  ELSE
    -- An expired row of any state behaves as absent: replaced, with a new fence from the sequence, no steps.
    rec.steps := NULL;
    rec.keep_until := NULL;
  END IF;

  UPDATE {{table}} AS t
  SET partition = p_partition, state = 'p', token = p_token, fingerprint = p_fingerprint,
      fence = nextval('{{fenceSeq}}'), lease_until = now_ts + lease,
      expires_at = greatest(now_ts + lease + grace, rec.keep_until), result = NULL, steps = rec.steps,
      keep_until = rec.keep_until
  WHERE t.id = p_id
  RETURNING t.fence INTO new_fence;
  RETURN 'A' || CASE WHEN takeover THEN '1' ELSE '0' END || new_fence
    || CASE WHEN rec.steps IS NULL THEN '' ELSE E'\n' || rec.steps::text END;
END
$fn$;
