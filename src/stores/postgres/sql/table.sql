-- table: the records of one store and everything they need, in the table's schema: the table, its expiry
-- index, the fencing sequence and the row check the functions share. Every statement is idempotent
-- (IF NOT EXISTS, OR REPLACE): running it again, or from two processes at once (createPostgresTable takes an
-- advisory lock), changes nothing.
--
-- Placeholders (filled by postgresTableSql, identifiers already quoted):
--   {{table}}      the table, e.g. "public"."trpc_idempotency"
--   {{index}}      its expiry index (an unqualified name: indexes live in their table's schema)
--   {{fenceSeq}}   the fencing sequence, e.g. "public"."trpc_idempotency_fence"
--   {{check}}      the row check function, e.g. "public"."trpc_idempotency_check_v1"
--
-- Columns of a record (schema version 1):
--   id           record identity (a hash of scope, path and key: never a raw key)
--   partition    opaque hash of the caller's scope; stored, not read
--   v            schema version, 1; a row with another value was written by something else
--   state        'p' in progress, 'c' completed, 'r' released
--   token        token of the claim that owns (or last owned) the record
--   fingerprint  request fingerprint ('' = not compared)
--   fence        fencing token, nextval of the sequence: grows per key across takeovers, releases and expiry
--   lease_until  lease end (read only while state = 'p')
--   expires_at   the row is absent from this instant on (never read as live) and the sweep may delete it:
--                lease end + grace while in progress, end of the TTL once completed or released
--   result       the stored result, byte for byte (only when state = 'c')
-- Times are the database clock (clock_timestamp()), never the application's.

CREATE TABLE IF NOT EXISTS {{table}} (
  id          text PRIMARY KEY,
  partition   text NOT NULL DEFAULT '',
  v           smallint NOT NULL,
  state       text NOT NULL,
  token       text NOT NULL,
  fingerprint text NOT NULL,
  fence       bigint NOT NULL,
  lease_until timestamptz,
  expires_at  timestamptz NOT NULL,
  result      text
);

CREATE INDEX IF NOT EXISTS {{index}} ON {{table}} (expires_at);

CREATE SEQUENCE IF NOT EXISTS {{fenceSeq}} AS bigint;

-- check(r): NULL when r is a record of this schema version, else why not (such a row is never changed).
CREATE OR REPLACE FUNCTION {{check}}(r {{table}}) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE
    WHEN r.v IS DISTINCT FROM 1 THEN 'has schema version ' || coalesce(r.v::text, 'null') || ', expected 1'
    WHEN r.state NOT IN ('p', 'c', 'r') THEN 'has unknown state ' || quote_literal(r.state)
    WHEN r.state = 'p' AND r.lease_until IS NULL THEN 'is in progress without a lease end'
    WHEN r.state = 'c' AND r.result IS NULL THEN 'is completed without a result'
  END
$fn$;
