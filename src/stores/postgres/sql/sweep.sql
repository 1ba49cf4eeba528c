-- sweep(p_limit) -> integer
-- Delete at most p_limit expired rows of this store (oldest expiry first) and return how many went. Rows
-- another session has locked are skipped (SKIP LOCKED), so sweeps from several processes share the work and
-- never wait on claims. Rows of another schema version are never touched.
--
--   p_limit  batch size (> 0)
--
-- Returns the number of rows deleted (< p_limit: nothing expired is left, as of now).
-- Placeholders: {{sweep}} {{table}} (see table.sql).
CREATE OR REPLACE FUNCTION {{sweep}}(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
  deleted integer;
BEGIN
  DELETE FROM {{table}}
  WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {{table}}
    WHERE expires_at <= clock_timestamp() AND v = 1
    ORDER BY expires_at
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  ));
  GET DIAGNOSTICS deleted = ROW_COUNT;
  RETURN deleted;
END
$fn$;
