/**
 * Stand-ins for the services an order calls: a payment API and a mailer. Like real ones (Stripe, Postmark), they
 * take an idempotency key and perform a request once per key: a second request with the key gets the first answer.
 */

export interface Charge {
  id: string;
  amountCents: number;
}

export const createFakePayments = () => {
  const charges = new Map<string, Charge>();
  return {
    /** Every charge performed, once per idempotency key. */
    charges,
    charge: async (amountCents: number, { idempotencyKey }: { idempotencyKey: string }): Promise<Charge> => {
      let charge = charges.get(idempotencyKey);
      if (!charge) charges.set(idempotencyKey, (charge = { id: `ch_${charges.size + 1}`, amountCents }));
      return charge;
    },
  };
};

export const createFakeMailer = () => {
  const sent = new Map<string, string>();
  let failures = 0;
  return {
    /** Every email sent, once per idempotency key. */
    sent,
    /** The next `count` sends fail, as a mail server that is briefly down. */
    failNext: (count: number) => {
      failures = count;
    },
    send: async (to: string, { idempotencyKey }: { idempotencyKey: string }): Promise<{ messageId: string }> => {
      if (failures > 0) {
        failures--;
        throw new Error('mail server unavailable');
      }
      if (!sent.has(idempotencyKey)) sent.set(idempotencyKey, to);
      return { messageId: `msg_${idempotencyKey.slice(0, 8)}` };
    },
  };
};
