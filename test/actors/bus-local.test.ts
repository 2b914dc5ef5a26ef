/** The Bus contract on LocalBus (both "nodes" share the one in-process bus). */
import t from 'tap';
import { LocalBus } from '../../src/actors/bus.js';
import { busContract } from './bus-contract.js';

busContract(t, 'local', async () => {
  const bus = new LocalBus();
  return { a: bus, b: bus, close: () => bus.close() };
});
