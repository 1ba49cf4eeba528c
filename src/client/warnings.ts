import type { IdempotencyWarning, IdempotencyWarningCode } from './types';

/** @internal Reports each warning code at most once per owner (a link or a retry helper). */
export const createWarnOnce = (
  onWarning: ((warning: IdempotencyWarning) => void) | undefined,
): ((warning: IdempotencyWarning) => void) => {
  const reported = new Set<IdempotencyWarningCode>();
  const report = onWarning ?? ((warning: IdempotencyWarning) => console.warn(`${warning.message} [${warning.code}]`));
  return (warning) => {
    if (reported.has(warning.code)) return;
    reported.add(warning.code);
    report(warning);
  };
};
