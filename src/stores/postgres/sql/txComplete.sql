-- tx_complete(p_id, p_token, p_result, p_ttl_ms, p_xid) -> text
-- The transactional mode's completion: stores the result on the row this transaction claimed, just before its
-- COMMIT (SELECT tx_complete(...); COMMIT, in one round trip). Wakes waiters when the COMMIT lands.
--
--   p_id      record id
--   p_token   token of the claim
--   p_result  the result text, kept byte for byte
--   p_ttl_ms  how long the completed record is kept, ms (> 0)
--   p_xid     txid_current() of the transaction that claimed (read right after tx_claim)
--
-- Returns 'O'. Raises (SQLSTATE TRPCE, so the COMMIT after it never runs and the transaction only rolls back)
-- when this is not the claiming transaction any more (the procedure sent COMMIT or ROLLBACK on the client) or
-- the row is not this token's in-progress row: storing a result there would vouch for writes that are not in
-- this transaction. No lease check: the advisory lock held since tx_claim already excludes everyone else,
-- however long the procedure ran.
-- Placeholders: {{txComplete}} {{table}} {{channel}} (see table.sql; {{channel}} is a string literal).
CREATE OR REPLACE FUNCTION {{txComplete}}(p_id text, p_token text, p_result text, p_ttl_ms bigint, p_xid bigint)
RETURNS text
LANGUAGE plpgsql AS $fn$
BEGIN
  IF txid_current_if_assigned() IS DISTINCT FROM p_xid THEN
    RAISE EXCEPTION 'trpc-idempotency: the claiming transaction has ended (the procedure sent COMMIT or ROLLBACK on its client?)'
      USING ERRCODE = 'TRPCE';
  END IF;
  UPDATE {{table}} AS t
  SET state = 'c', result = p_result, lease_until = NULL,
      expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond'
  WHERE t.id = p_id AND t.v = 1 AND t.state = 'p' AND t.token = p_token;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'trpc-idempotency: row % is not this transaction''s claim any more', p_id USING ERRCODE = 'TRPCE';
  END IF;
  PERFORM pg_notify({{channel}}, p_id);
  RETURN 'O';
END
$fn$;
