import { IdempotencyError } from '../../errors';

/** Every name the store derives from its table option, quoted where SQL needs them quoted. */
export interface TableNames {
  /** As the user gave it, e.g. `app.trpc_idempotency`. */
  table: string;
  /** Quoted and qualified when a schema was given: `"app"."trpc_idempotency"`. */
  quoted: string;
  /** Schema part, or `undefined` (then PostgreSQL's `search_path` decides). */
  schema: string | undefined;
  /** Quoted name of one of the table's functions (or its sequence), e.g. `"app"."trpc_idempotency_claim_v1"`. */
  object(suffix: string): string;
  /** Unqualified quoted name (indexes live in their table's schema). */
  local(suffix: string): string;
  /** The NOTIFY channel of this table: its name as given (at most 63 bytes, PostgreSQL's limit on names). */
  channel: string;
}

/**
 * Checks the `table` option and derives the names of everything that belongs to it. Only lowercase
 * identifiers are allowed, so quoted and unquoted spellings name the same table and nothing needs escaping.
 */
export const tableNames = (table: unknown, caller: string): TableNames => {
  if (typeof table !== 'string' || !TABLE.test(table) || table.length > MAX_TABLE_LENGTH) {
    throw new IdempotencyError(
      'INVALID_OPTION',
      `${caller}: option "table" must be a lowercase identifier, optionally schema-qualified ("app.idempotency"), ` +
        `each part at most ${MAX_PART_LENGTH} characters and ${MAX_TABLE_LENGTH} in all; got ${JSON.stringify(table)}`,
    );
  }
  const dot = table.indexOf('.');
  const schema = dot === -1 ? undefined : table.slice(0, dot);
  const name = dot === -1 ? table : table.slice(dot + 1);
  const qualify = (part: string): string => (schema === undefined ? `"${part}"` : `"${schema}"."${part}"`);
  return {
    table,
    quoted: qualify(name),
    schema,
    object: (suffix) => qualify(`${name}_${suffix}`),
    local: (suffix) => `"${name}_${suffix}"`,
    channel: table,
  };
};

// ---- internal helpers ----

/** Leaves room for the longest suffix (`_tx_complete_v1`, 15 characters) within PostgreSQL's 63-byte names. */
const MAX_PART_LENGTH = 48;
/** The channel is the whole name, and channels are names too. */
const MAX_TABLE_LENGTH = 63;
const TABLE = new RegExp(`^(?:[a-z_][a-z0-9_]{0,${MAX_PART_LENGTH - 1}}\\.)?[a-z_][a-z0-9_]{0,${MAX_PART_LENGTH - 1}}$`);
