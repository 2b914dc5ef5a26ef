/** The CustomerStore contract, run on both backends from books-embedded/books-cassandra.test.ts. */
import type { Test } from 'tap';
import { newId } from '../../src/ids.js';
import type { Address, CustomerStore } from '../../src/store/customers/storage.js';

function address(customerId: string, overrides: Partial<Address> = {}): Address {
  return {
    addressId: newId(),
    customerId,
    label: 'Home',
    name: 'Ada Lovelace',
    line1: '12 St James Square',
    line2: '',
    city: 'London',
    region: '',
    postalCode: 'SW1Y 4JH',
    country: 'GB',
    phone: '',
    createdAt: 1_764_000_000_000,
    updatedAt: 1_764_000_000_000,
    ...overrides,
  };
}

export function customersContract(t: Test, name: string, open: () => Promise<CustomerStore>): void {
  t.test(`${name}: customers and their address books`, async (t) => {
    const s = await open();
    try {
      const id = newId();
      t.equal(await s.get(id), undefined, 'no record yet');
      const c = { customerId: id, name: 'Ada', defaultAddressId: null, createdAt: 1, updatedAt: 2 };
      await s.put(c);
      t.same(await s.get(id), c, 'put then get');
      await s.put({ ...c, name: 'Ada L.', updatedAt: 3 });
      t.equal((await s.get(id))?.name, 'Ada L.', 'put replaces');

      const a = address(id);
      const b = address(id, { label: 'Work', city: 'Cambridge', postalCode: 'CB2 1TN' });
      t.equal(await s.addAddress(a, 2), true, 'add');
      t.equal(await s.addAddress(b, 2), true, 'add a second');
      t.equal(await s.addAddress(address(id), 2), false, 'a third is over the limit');
      t.equal(await s.addAddress({ ...a, label: 'Home (old)' }, 2), true, 're-adding the same id replaces it, even at the limit');
      t.same((await s.listAddresses(id)).map((x) => x.label).sort(), ['Home (old)', 'Work'], 'list');
      t.same(await s.getAddress(id, b.addressId), b, 'getAddress');
      t.same(await s.listAddresses(newId()), [], 'another customer has none');

      t.equal(await s.updateAddress({ ...b, city: 'Oxford', postalCode: 'OX1 2JD', updatedAt: 5 }), true, 'update');
      t.equal((await s.getAddress(id, b.addressId))?.city, 'Oxford', 'updated');
      t.equal(await s.updateAddress(address(id)), false, 'update of an unknown address: false');
      t.equal(await s.removeAddress(id, a.addressId), true, 'remove');
      t.equal(await s.removeAddress(id, a.addressId), false, 'twice: false');
      t.equal(await s.addAddress(address(id), 2), true, 'room again after a removal');

      // Concurrent adds never exceed the limit.
      const other = newId();
      const results = await Promise.all(Array.from({ length: 12 }, () => s.addAddress(address(other), 5)));
      t.equal(results.filter(Boolean).length, 5, 'exactly 5 of 12 concurrent adds');
      t.equal((await s.listAddresses(other)).length, 5, 'and 5 stored');
    } finally {
      await s.close();
    }
  });
}
