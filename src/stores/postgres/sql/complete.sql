-- complete(p_id, p_token, p_result, p_ttl_ms) -> text
-- Store the final result; only the current owner can. Idempotent for the same token. Wakes waiters.
--
--   p_id      record id
--   p_token   token of the claim
--   p_result  the result text, kept byte for byte
--   p_ttl_ms  how long the completed record is kept, ms (> 0)
--
-- Returns:
--   'O'            ok: completed now, or already completed by this token
--   'L'            lost: absent, expired, released, or owned by another token; nothing is written
--   'X' || reason  corrupt (left untouched)
--
-- Completing drops the row's durable steps (the final result is all a retry needs).
-- The owner may complete after its lease ran out as long as nobody took the key over and the row has not
-- expired (lease + grace). A completion is announced with NOTIFY {{channel}}, payload the id: delivered when
-- this call's transaction commits.
-- Placeholders: {{complete}} {{table}} {{check}} {{channel}} (see table.sql; {{channel}} is a string literal).
CREATE OR REPLACE FUNCTION {{complete}}(p_id text, p_token text, p_result text, p_ttl_ms bigint) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  rec {{table}}%ROWTYPE;
  reason text;
BEGIN
  -- The usual case in one statement: our live in-progress row.
  UPDATE {{table}} AS t
  SET state = 'c', result = p_result, lease_until = NULL, steps = NULL, keep_until = NULL,
      expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond'
  WHERE t.id = p_id AND t.v = 1 AND t.state = 'p' AND t.token = p_token AND t.lease_until IS NOT NULL
    AND t.expires_at > clock_timestamp();
  IF FOUND THEN
    PERFORM pg_notify({{channel}}, p_id);
    RETURN 'O';
  END IF;

  SELECT * INTO rec FROM {{table}} WHERE id = p_id;
  IF NOT FOUND THEN
    RETURN 'L';
  END IF;
  reason := {{check}}(rec);
  IF reason IS NOT NULL THEN
    RETURN 'X' || reason;
  END IF;
  IF rec.state = 'c' AND rec.token = p_token AND rec.expires_at > clock_timestamp() THEN
    RETURN 'O';
  END IF;
  RETURN 'L';
END
$fn$;
