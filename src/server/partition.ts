import { GLOBAL_PARTITION } from '../store';
import { sha256Base64url } from './fingerprint';
import { GLOBAL_SCOPE_TEXT } from './scope';

/**
 * The store partition of a scope (see `ClaimRequest.partition`): a hash of the same scope text that goes into the
 * record id (`scopeText`), so a store can count and evict per caller without ever holding the scope itself. The
 * global scope is the global partition, as it is the same records.
 */
export const partitionOf = (scoped: string): string =>
  scoped === GLOBAL_SCOPE_TEXT ? GLOBAL_PARTITION : sha256Base64url(`scope:${scoped}`);
