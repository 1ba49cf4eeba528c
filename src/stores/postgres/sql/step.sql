-- step(p_id, p_token, p_name, p_text, p_keep_ms) -> text
-- Record one durable step of the current owner; a name is written once and never overwritten. One call, one
-- round trip. Also adds the two columns steps need to a table made before them (idempotent), which is why
-- this file is rendered right after table.sql.
--
--   p_id       record id
--   p_token    token of the claim
--   p_name     step name
--   p_text     the step's text, kept byte for byte
--   p_keep_ms  keep the row (with its steps) at least this long from now, in every state but completed (> 0)
--
-- Returns:
--   'O'            ok: recorded now
--   'E' || text    exists: the name was recorded before (by this or an earlier owner); nothing is written
--   'L'            lost: absent, expired, completed, released, or owned by another token; nothing is written
--   'X' || reason  corrupt (left untouched)
--
-- Columns for steps:
--   steps       jsonb object name -> text, NULL when none; claim hands it to the next owner (after a release or
--               a takeover), complete sets it to NULL
--   keep_until  while steps is not NULL: the row expires no earlier than this (claim, renew and release use
--               greatest(..., keep_until) for expires_at)
-- Like complete, an owner whose lease ran out may still record while nobody took the key over (its token
-- decides) and the row has not expired.
-- Placeholders: {{step}} {{table}} {{check}} (see table.sql).
ALTER TABLE {{table}} ADD COLUMN IF NOT EXISTS steps jsonb;
ALTER TABLE {{table}} ADD COLUMN IF NOT EXISTS keep_until timestamptz;

CREATE OR REPLACE FUNCTION {{step}}(p_id text, p_token text, p_name text, p_text text, p_keep_ms bigint) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  rec {{table}}%ROWTYPE;
  reason text;
  now_ts timestamptz;
  keep timestamptz;
BEGIN
  -- Locked: two writes of one name queue here, and the second sees the first.
  SELECT * INTO rec FROM {{table}} WHERE id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'L';
  END IF;
  reason := {{check}}(rec);
  IF reason IS NOT NULL THEN
    RETURN 'X' || reason;
  END IF;
  now_ts := clock_timestamp();
  IF rec.state <> 'p' OR rec.token <> p_token OR rec.expires_at <= now_ts THEN
    RETURN 'L';
  END IF;
  IF rec.steps ? p_name THEN
    RETURN 'E' || (rec.steps ->> p_name);
  END IF;
  keep := greatest(now_ts + p_keep_ms * interval '1 millisecond', rec.keep_until);
  UPDATE {{table}} AS t
  SET steps = coalesce(t.steps, '{}'::jsonb) || jsonb_build_object(p_name, p_text),
      keep_until = keep, expires_at = greatest(t.expires_at, keep)
  WHERE t.id = p_id;
  RETURN 'O';
END
$fn$;
