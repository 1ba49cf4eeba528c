/**
 * An order form whose submit button keeps one idempotency key per submit intent: a double click, a second click
 * after a lost response, or a retry all send the same key, so the server creates one order and replays it for the
 * others. The key is replaced only when an order went through or when the order itself changes.
 */
import { useMutation } from '@tanstack/react-query';
import type { FormEvent } from 'react';
import { useRef, useState } from 'react';
import type { IdempotencyCallInfo } from 'trpc-idempotency/client';
import { generateUuidV4 } from 'trpc-idempotency/client';
import type { Order } from '../shared/orders';
import type { OrderClient } from './client';

interface SubmitResult {
  /** Which press of the button this answers (1, 2, ...). */
  press: number;
  key: string;
  outcome: 'created' | 'replayed' | 'failed';
  order?: Order;
  message?: string;
}

interface PlaceOrder {
  input: { item: string; quantity: number };
  key: string;
  info: IdempotencyCallInfo;
}

export const OrderForm = ({ client }: { client: OrderClient }) => {
  const [item, setItem] = useState('book');
  const [quantity, setQuantity] = useState(1);
  const [results, setResults] = useState<SubmitResult[]>([]);
  // The key of the current submit intent, made at its first press. A ref, not state: two clicks before React
  // re-renders must read the same key.
  const intentKey = useRef<string | null>(null);
  const presses = useRef(0);

  const placeOrder = useMutation({
    mutationFn: ({ input, key, info }: PlaceOrder) =>
      client.order.create.mutate(input, { context: { idempotencyKey: key, idempotency: info } }),
  });

  /** A different order is a different intent: its first press makes a new key. */
  const newIntent = () => {
    intentKey.current = null;
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const key = (intentKey.current ??= generateUuidV4());
    const press = ++presses.current;
    const info: IdempotencyCallInfo = {};
    try {
      const order = await placeOrder.mutateAsync({ input: { item, quantity }, key, info });
      // This intent is done: the next press is a new order.
      if (intentKey.current === key) newIntent();
      setResults((all) => [...all, { press, key, order, outcome: info.replayed ? 'replayed' : 'created' }]);
    } catch (error) {
      // No answer, or an error: keep the key, so pressing again cannot create a second order.
      const message = error instanceof Error ? error.message : String(error);
      setResults((all) => [...all, { press, key, outcome: 'failed', message }]);
    }
  };

  return (
    <form onSubmit={submit}>
      <label>
        Item{' '}
        <input
          name="item"
          value={item}
          onChange={(event) => {
            setItem(event.target.value);
            newIntent();
          }}
        />
      </label>{' '}
      <label>
        Quantity{' '}
        <input
          name="quantity"
          type="number"
          min={1}
          value={quantity}
          onChange={(event) => {
            setQuantity(Number(event.target.value));
            newIntent();
          }}
        />
      </label>{' '}
      {/* Not disabled while pending on purpose: the key, not the button state, is what prevents duplicates. */}
      <button type="submit">Place order</button>
      {placeOrder.isPending && <span role="status"> Placing order…</span>}
      <ol aria-label="Results">
        {results.map((result) => (
          <li key={result.press} data-outcome={result.outcome} data-order-id={result.order?.id} data-key={result.key}>
            {describe(result)}
          </li>
        ))}
      </ol>
    </form>
  );
};

const describe = ({ outcome, order, message }: SubmitResult): string => {
  if (outcome === 'failed') return `No order confirmation (${message ?? 'error'}). Pressing "Place order" again is safe.`;
  const what = `order #${order?.id}: ${order?.quantity} × ${order?.item}`;
  return outcome === 'created' ? `Created ${what}` : `Already placed ${what} (replayed, not placed twice)`;
};
