-- tx_peek(p_id, p_busy_retry_ms) -> text
-- How a waiter of the transactional mode sees a key, outside any transaction of its own (autocommit): the
-- owner's row is invisible until its COMMIT, so the owner is the key's advisory lock. Taken and released
-- within this statement (pg_try_advisory_xact_lock in a one-statement transaction): never waits.
--
--   p_id             record id
--   p_busy_retry_ms  when to look again while another transaction holds the key, ms (>= 1)
--
-- Returns (the peek function's letters):
--   'I' || ms      the key is held: by a transaction (look again in p_busy_retry_ms) or a live store-mode lease
--   'S'            settled: a new claim decides
--   'X' || reason  corrupt
-- Placeholders: {{txPeek}} {{peek}} {{table}} {{lockPrefix}} (see table.sql; {{lockPrefix}} is a string literal).
CREATE OR REPLACE FUNCTION {{txPeek}}(p_id text, p_busy_retry_ms bigint) RETURNS text
LANGUAGE plpgsql AS $fn$
BEGIN
  -- A completed key is settled without touching its lock (a begin that finds the lock taken answers 'I').
  IF EXISTS (SELECT 1 FROM {{table}} WHERE id = p_id AND state = 'c' AND v = 1 AND expires_at > clock_timestamp()) THEN
    RETURN 'S';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtextextended({{lockPrefix}} || p_id, 0)) THEN
    RETURN 'I' || greatest(1, p_busy_retry_ms);
  END IF;
  RETURN {{peek}}(p_id);
END
$fn$;
