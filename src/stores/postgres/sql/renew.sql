-- renew(p_id, p_token, p_lock_ttl_ms, p_grace_ms) -> text
-- Extend the lease of the current owner to p_lock_ttl_ms from now.
--
--   p_id           record id
--   p_token        token of the claim
--   p_lock_ttl_ms  new lease length from now, ms (> 0)
--   p_grace_ms     how long the row outlives the lease, ms (>= 0)
--
-- Returns:
--   'O'            ok: the lease of this token was live and now ends p_lock_ttl_ms from now
--   'L'            lost: absent, completed, released, owned by another token, or the lease already ran out
--                  (complete stays lenient there; renew does not revive a lapsed lease)
--   'X' || reason  corrupt (left untouched)
-- Placeholders: {{renew}} {{table}} {{check}} (see table.sql).
CREATE OR REPLACE FUNCTION {{renew}}(p_id text, p_token text, p_lock_ttl_ms bigint, p_grace_ms bigint) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  rec {{table}}%ROWTYPE;
  reason text;
BEGIN
  UPDATE {{table}} AS t
  SET lease_until = clock_timestamp() + p_lock_ttl_ms * interval '1 millisecond',
      expires_at = greatest(clock_timestamp() + (p_lock_ttl_ms + p_grace_ms) * interval '1 millisecond', t.keep_until)
  WHERE t.id = p_id AND t.v = 1 AND t.state = 'p' AND t.token = p_token AND t.lease_until > clock_timestamp();
  IF FOUND THEN
    RETURN 'O';
  END IF;

  SELECT * INTO rec FROM {{table}} WHERE id = p_id;
  IF FOUND THEN
    reason := {{check}}(rec);
    IF reason IS NOT NULL THEN
      RETURN 'X' || reason;
    END IF;
  END IF;
  RETURN 'L';
END
$fn$;
