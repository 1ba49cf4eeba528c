-- tx_claim(p_id, p_partition, p_token, p_fingerprint, p_lock_ttl_ms, p_grace_ms, p_busy_retry_ms,
--          p_statement_timeout_ms, p_idle_timeout_ms) -> text
-- The transactional mode's claim: called as the first statement of the caller's open transaction
-- (BEGIN ISOLATION LEVEL ...; SELECT tx_claim(...); SAVEPOINT ...), in one round trip. Never waits on another
-- transaction of the same key: that one holds the key's advisory lock, and this call answers 'I' at once.
--
--   p_id                    record id
--   p_partition             opaque hash of the caller's scope (stored only)
--   p_token                 random token of this claim
--   p_fingerprint           '' = do not compare
--   p_lock_ttl_ms           lease written on the in-progress row (seen only if the row is ever committed as
--                           in progress, which the transactional mode never does), ms (> 0)
--   p_grace_ms              as for claim, ms (>= 0)
--   p_busy_retry_ms         retry hint when another transaction holds the key, ms (>= 1)
--   p_statement_timeout_ms  statement_timeout for the rest of the transaction, ms; < 0 keeps the session's
--   p_idle_timeout_ms       idle_in_transaction_session_timeout for the rest of it, ms; < 0 keeps the session's
--
-- Returns the claim function's letters:
--   'A' || takeover || fence  acquired: the in-progress row is written inside this transaction (invisible to
--                             others until COMMIT, gone with a ROLLBACK); takeover '1' only when an expired
--                             store-mode lease of the same id was taken over
--   'I' || retryAfterMs       another transaction (advisory lock) or a live store-mode lease holds the key
--   'C' || result             completed
--   'M'                       mismatch
--   'X' || reason             corrupt
--
-- Why the advisory lock comes first: two transactions inserting the same id would otherwise queue on the row
-- lock of the first one's uncommitted INSERT for as long as its procedure runs. pg_try_advisory_xact_lock never
-- waits, and lives exactly as long as the transaction (COMMIT, ROLLBACK or the backend's death end it). Its key
-- is a 64-bit hash of the table and the id: a collision costs a false 'I', never a double run.
--
--   T1: lock(k) ok ── claim: insert p(T1) ── procedure ── complete + COMMIT (row c, lock gone, NOTIFY)
--   T2:        lock(k) busy -> 'I'                                 T2': lock(k) ok ── claim -> 'C' (replay)
--
-- Under REPEATABLE READ or SERIALIZABLE the snapshot is taken when this statement starts, before the lock is
-- granted: a transaction that committed the key in between makes the claim fail with 40001, which the store
-- answers as 'I' (a retry replays).
-- Placeholders: {{txClaim}} {{claim}} {{table}} {{lockPrefix}} (see table.sql; {{lockPrefix}} is a string literal).
CREATE OR REPLACE FUNCTION {{txClaim}}(
  p_id text, p_partition text, p_token text, p_fingerprint text, p_lock_ttl_ms bigint, p_grace_ms bigint,
  p_busy_retry_ms bigint, p_statement_timeout_ms bigint, p_idle_timeout_ms bigint
) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  rec {{table}}%ROWTYPE;
  reply text;
BEGIN
  -- A replay takes no lock: holding the key's lock until its ROLLBACK would make concurrent replays of the key
  -- answer 'I' to each other (a completed row never changes; it is only deleted once expired).
  SELECT * INTO rec FROM {{table}} WHERE id = p_id;
  IF FOUND AND rec.state = 'c' AND rec.v = 1 AND rec.result IS NOT NULL AND rec.expires_at > clock_timestamp() THEN
    IF p_fingerprint <> '' AND rec.fingerprint <> '' AND p_fingerprint <> rec.fingerprint THEN
      RETURN 'M';
    END IF;
    RETURN 'C' || rec.result;
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtextextended({{lockPrefix}} || p_id, 0)) THEN
    RETURN 'I' || greatest(1, p_busy_retry_ms);
  END IF;
  reply := {{claim}}(p_id, p_partition, p_token, p_fingerprint, p_lock_ttl_ms, p_grace_ms);
  IF left(reply, 1) = 'A' THEN
    -- Local to this transaction: the pooled connection's next user gets the session's settings back.
    IF p_statement_timeout_ms >= 0 THEN
      PERFORM set_config('statement_timeout', p_statement_timeout_ms || 'ms', true);
    END IF;
    IF p_idle_timeout_ms >= 0 THEN
      PERFORM set_config('idle_in_transaction_session_timeout', p_idle_timeout_ms || 'ms', true);
    END IF;
  END IF;
  RETURN reply;
END
$fn$;
