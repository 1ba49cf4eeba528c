-- peek(p_id) -> text
-- How a waiter sees a record (read only, no lock).
--
--   p_id  record id
--
-- Returns (the claim's letters):
--   'I' || leaseLeftMs  a live lease, >= 1 ms left
--   'S'                 settled: absent, expired, completed, released, or the lease ran out
--   'X' || reason       corrupt
-- Placeholders: {{peek}} {{table}} {{check}} (see table.sql).
CREATE OR REPLACE FUNCTION {{peek}}(p_id text) RETURNS text
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  rec {{table}}%ROWTYPE;
  reason text;
  now_ts constant timestamptz := clock_timestamp();
BEGIN
  SELECT * INTO rec FROM {{table}} WHERE id = p_id;
  IF NOT FOUND THEN
    RETURN 'S';
  END IF;
  reason := {{check}}(rec);
  IF reason IS NOT NULL THEN
    RETURN 'X' || reason;
  END IF;
  IF rec.state = 'p' AND rec.expires_at > now_ts AND rec.lease_until > now_ts THEN
    RETURN 'I' || greatest(1, ceil(extract(epoch FROM rec.lease_until - now_ts) * 1000))::bigint;
  END IF;
  RETURN 'S';
END
$fn$;
