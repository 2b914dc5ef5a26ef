/** The Bus contract on LocalBus (both "nodes" share the one in-process bus). */
import t from 'tap';
import { LocalBus, handOver } from '../../src/actors/bus.js';
import { busContract } from './bus-contract.js';

busContract(t, 'local', async () => {
  const bus = new LocalBus();
  return { a: bus, b: bus, close: () => bus.close() };
});

t.test('local: a handed-over payload is passed on, not copied; anything else still is', async (t) => {
  const bus = new LocalBus();
  t.teardown(() => bus.close());
  let received: unknown;
  let returned: { list: number[] } | undefined;
  bus.subscribe('h.req', (p) => {
    received = p;
    returned = { list: [1] };
    return handOver(returned);
  });
  const sent = { list: [1, 2] };
  const reply = await bus.request('h.req', handOver(sent), 1000);
  t.equal(received, sent, 'the handler got the very object handed over');
  t.equal(reply, returned, 'and the requester the very reply handed over');
  const plain = { list: [3] };
  bus.subscribe('p.req', (p) => {
    received = p;
    return plain;
  });
  const again = { list: [4] };
  const copied = await bus.request('p.req', again, 1000);
  t.not(received, again, 'without handOver the handler gets a copy');
  t.not(copied, plain, 'and the requester a copy of the reply');
  t.same(copied, plain);

  const seen: Array<{ n: number[] }> = [];
  bus.subscribe('h.pub', (p) => void seen.push(p as { n: number[] }));
  bus.subscribe('h.pub', (p) => {
    (p as { n: number[] }).n.push(100);
    seen.push(p as { n: number[] });
  });
  const event = { n: [1] };
  bus.publish('h.pub', handOver(event));
  await new Promise((r) => setImmediate(r));
  t.equal(seen[0], event, 'the first subscriber got the object itself');
  t.not(seen[1], event, 'the second a copy');
  t.same(seen[0], { n: [1] }, "the second subscriber's change did not reach the first");
  t.same(seen[1], { n: [1, 100] });
});
