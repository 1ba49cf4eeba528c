-- release(p_id, p_token, p_released_ttl_ms) -> text
-- Give the key up without a result so a retry runs again; only the current owner can. Idempotent for the
-- same token. Wakes waiters.
--
--   p_id               record id
--   p_token            token of the claim
--   p_released_ttl_ms  how long the released row is kept (so a repeated release still answers 'O'), ms (> 0)
--
-- Returns:
--   'O'            ok: released now, or already released by this token
--   'L'            lost: absent, expired, completed, or owned by another token; nothing is written
--   'X' || reason  corrupt (left untouched)
--
-- A row with durable steps keeps them, and is kept until keep_until if that is later (see step.sql).
-- A release is announced with NOTIFY {{channel}}, payload the id. Fences come from the sequence, so a
-- released row need not keep its fence for the next claim (it does anyway, until it expires).
-- Placeholders: {{release}} {{table}} {{check}} {{channel}} (see table.sql; {{channel}} is a string literal).
CREATE OR REPLACE FUNCTION {{release}}(p_id text, p_token text, p_released_ttl_ms bigint) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  rec {{table}}%ROWTYPE;
  reason text;
BEGIN
  UPDATE {{table}} AS t
  SET state = 'r', expires_at = greatest(clock_timestamp() + p_released_ttl_ms * interval '1 millisecond', t.keep_until)
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
  IF rec.state = 'r' AND rec.token = p_token AND rec.expires_at > clock_timestamp() THEN
    RETURN 'O';
  END IF;
  RETURN 'L';
END
$fn$;
