/**
 * One key per submit intent: a double click, or a second press after a lost response, sends the same key, so
 * the server creates one order and replays it to the other press. A success, or an edit of the form, starts a
 * new intent (a new key). Render inside `<QueryClientProvider>` and `<TRPCProvider>`.
 */
import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { createSubmitIntent } from 'trpc-idempotency/client';
import { useTRPC } from './trpc.js';

export const OrderForm = () => {
  const trpc = useTRPC();
  const [item, setItem] = useState('book');
  // One intent object per mounted form; its context keeps the current key.
  const [intent] = useState(() => createSubmitIntent());
  const placeOrder = useMutation(trpc.order.create.mutationOptions({ trpc: { context: intent.context }, onSuccess: intent.renew }));

  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        placeOrder.mutate({ item });
      }}
    >
      <input
        value={item}
        onChange={(event) => {
          setItem(event.target.value);
          intent.renew();
        }}
      />
      {/* Not disabled while pending: the key, not the button, prevents the duplicate. */}
      <button type="submit">Place order</button>
      {placeOrder.data && <p>Order #{placeOrder.data.id}</p>}
    </form>
  );
};
