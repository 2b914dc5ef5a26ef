/**
 * The Customers service's cluster store: its own keyspace `<base>_customers`.
 *
 * customers  (customer_id)                — name, default address
 * addresses  ((customer_id), address_id)  — the address book; static `version`
 *
 * Adding an address is one conditional batch on the customer's partition,
 * `UPDATE version = v + 1 IF version = v` plus the row, computed from a SERIAL read at
 * version v: two concurrent adds cannot both pass the count check, so the book never holds
 * more than the limit.
 */
import type { Address, Customer, CustomerStore } from '../../store/customers/storage.js';
import { KindredError } from '../../errors.js';
import { backoff, isRetryable, isUnknownOutcome, toNum, type Row, type Session } from './client.js';
import { openServiceKeyspace, type ServiceKeyspaceOptions } from './store-schema.js';

export const CUSTOMERS_KEYSPACE_VERSION = 1;

const TABLES: Array<[string, string]> = [
  ['customers', `(customer_id text PRIMARY KEY, name text, default_address_id text, created_at bigint, updated_at bigint)`],
  ['addresses', `(
    customer_id text, address_id text, version int STATIC,
    label text, name text, line1 text, line2 text, city text, region text, postal_code text, country text, phone text,
    created_at bigint, updated_at bigint,
    PRIMARY KEY ((customer_id), address_id))`],
];

const ADDRESS_COLS = 'customer_id, address_id, label, name, line1, line2, city, region, postal_code, country, phone, created_at, updated_at';

function toAddress(r: Row): Address {
  return {
    addressId: r.address_id,
    customerId: r.customer_id,
    label: r.label ?? '',
    name: r.name ?? '',
    line1: r.line1 ?? '',
    line2: r.line2 ?? '',
    city: r.city ?? '',
    region: r.region ?? '',
    postalCode: r.postal_code ?? '',
    country: r.country ?? '',
    phone: r.phone ?? '',
    createdAt: toNum(r.created_at),
    updatedAt: toNum(r.updated_at),
  };
}

function params(a: Address): unknown[] {
  return [a.customerId, a.addressId, a.label, a.name, a.line1, a.line2, a.city, a.region, a.postalCode, a.country, a.phone, a.createdAt, a.updatedAt];
}

export class CassandraCustomerStore implements CustomerStore {
  private readonly q: Record<string, string>;

  private constructor(private readonly s: Session, ks: string) {
    this.q = {
      get: `SELECT customer_id, name, default_address_id, created_at, updated_at FROM ${ks}.customers WHERE customer_id = ?`,
      put: `INSERT INTO ${ks}.customers (customer_id, name, default_address_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
      list: `SELECT ${ADDRESS_COLS}, version FROM ${ks}.addresses WHERE customer_id = ?`,
      one: `SELECT ${ADDRESS_COLS} FROM ${ks}.addresses WHERE customer_id = ? AND address_id = ?`,
      insert: `INSERT INTO ${ks}.addresses (${ADDRESS_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      bumpFirst: `UPDATE ${ks}.addresses SET version = 1 WHERE customer_id = ? IF version = null`,
      bump: `UPDATE ${ks}.addresses SET version = ? WHERE customer_id = ? IF version = ?`,
      update: `UPDATE ${ks}.addresses SET label = ?, name = ?, line1 = ?, line2 = ?, city = ?, region = ?, postal_code = ?, country = ?, phone = ?, updated_at = ?
        WHERE customer_id = ? AND address_id = ? IF EXISTS`,
      remove: `DELETE FROM ${ks}.addresses WHERE customer_id = ? AND address_id = ? IF EXISTS`,
    };
  }

  static async open(opts: ServiceKeyspaceOptions): Promise<CassandraCustomerStore> {
    const { session, ks } = await openServiceKeyspace(opts, 'customers', TABLES, CUSTOMERS_KEYSPACE_VERSION);
    return new CassandraCustomerStore(session, ks);
  }

  async get(customerId: string): Promise<Customer | undefined> {
    const r = (await this.s.execute(this.q.get, [customerId], { idempotent: true })).first();
    if (!r) return undefined;
    return { customerId: r.customer_id, name: r.name ?? '', defaultAddressId: r.default_address_id ?? null, createdAt: toNum(r.created_at), updatedAt: toNum(r.updated_at) };
  }

  async put(c: Customer): Promise<void> {
    await this.s.execute(this.q.put, [c.customerId, c.name, c.defaultAddressId, c.createdAt, c.updatedAt], { idempotent: true });
  }

  async listAddresses(customerId: string): Promise<Address[]> {
    const rows = await this.s.all(this.q.list, [customerId]);
    // A partition with only the static version column returns one row with a null address_id.
    return rows.filter((r) => r.address_id !== null).map(toAddress);
  }

  async getAddress(customerId: string, addressId: string): Promise<Address | undefined> {
    const r = (await this.s.execute(this.q.one, [customerId, addressId], { idempotent: true })).first();
    return r ? toAddress(r) : undefined;
  }

  async addAddress(a: Address, max: number): Promise<boolean> {
    for (let round = 0; round < 32; round++) {
      const rows = await this.s.all(this.q.list, [a.customerId], { serial: true });
      const present = rows.filter((r) => r.address_id !== null);
      if (present.some((r) => r.address_id === a.addressId)) {
        await this.s.execute(this.q.insert, params(a), { idempotent: true });
        return true;
      }
      if (present.length >= max) return false;
      const version = rows.length > 0 && rows[0]!.version !== null ? (rows[0]!.version as number) : null;
      const bump = version === null ? { query: this.q.bumpFirst, params: [a.customerId] } : { query: this.q.bump, params: [version + 1, a.customerId, version] };
      try {
        const rs = await this.s.batch([bump, { query: this.q.insert, params: params(a) }]);
        if (rs.first()?.['[applied]'] === true) return true;
      } catch (err) {
        if (!(isUnknownOutcome(err) || isRetryable(err))) throw err;
        // Unknown outcome: the next round's SERIAL read shows whether our row is there.
      }
      await backoff(round);
    }
    throw new KindredError('UNAVAILABLE', 'cassandra: the address book stayed contended');
  }

  async updateAddress(a: Address): Promise<boolean> {
    const p = params(a);
    const rs = await this.s.execute(this.q.update, [...p.slice(2, 11), a.updatedAt, a.customerId, a.addressId]);
    return rs.first()?.['[applied]'] === true;
  }

  async removeAddress(customerId: string, addressId: string): Promise<boolean> {
    const rs = await this.s.execute(this.q.remove, [customerId, addressId]);
    return rs.first()?.['[applied]'] === true;
  }

  close(): Promise<void> {
    return this.s.close();
  }
}
