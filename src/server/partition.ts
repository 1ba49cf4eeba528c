import { GLOBAL_PARTITION } from '../store';
import { sha256Base64url } from './fingerprint';

/**
 * The store partition of a scope (see `ClaimRequest.partition`): a hash of the same scope text that goes into the
 * record id, so a store can count and evict per caller without ever holding the scope itself. `''` (no scope)
 * is the global partition, as it is the same records.
 */
export const partitionOf = (scope: string): string => (scope === '' ? GLOBAL_PARTITION : sha256Base64url(`scope:${scope}`));
