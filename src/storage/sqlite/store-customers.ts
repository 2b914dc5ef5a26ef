/**
 * The Customers service's embedded store: its own file `<dataDir>/store/customers.db`.
 *
 * customers (customer_id)             — name, default address
 * addresses (customer_id, address_id) — the address book, in creation (id) order
 */
import path from 'node:path';
import type { Address, Customer, CustomerStore } from '../../store/customers/storage.js';
import { read, storageError, write } from './common.js';
import { openServiceDb, type ServiceDb, type ServiceDbOptions } from './store-db.js';

export const CUSTOMERS_DB_VERSION = 1;

const DDL = `
CREATE TABLE IF NOT EXISTS customers (
  customer_id        TEXT PRIMARY KEY,
  name               TEXT NOT NULL,
  default_address_id TEXT,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS addresses (
  customer_id TEXT NOT NULL,
  address_id  TEXT NOT NULL,
  label       TEXT NOT NULL,
  name        TEXT NOT NULL,
  line1       TEXT NOT NULL,
  line2       TEXT NOT NULL,
  city        TEXT NOT NULL,
  region      TEXT NOT NULL,
  postal_code TEXT NOT NULL,
  country     TEXT NOT NULL,
  phone       TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (customer_id, address_id)
) WITHOUT ROWID;
`;

interface AddressRow {
  customer_id: string;
  address_id: string;
  label: string;
  name: string;
  line1: string;
  line2: string;
  city: string;
  region: string;
  postal_code: string;
  country: string;
  phone: string;
  created_at: number;
  updated_at: number;
}

function toAddress(r: AddressRow): Address {
  return {
    addressId: r.address_id,
    customerId: r.customer_id,
    label: r.label,
    name: r.name,
    line1: r.line1,
    line2: r.line2,
    city: r.city,
    region: r.region,
    postalCode: r.postal_code,
    country: r.country,
    phone: r.phone,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function params(a: Address): unknown[] {
  return [a.customerId, a.addressId, a.label, a.name, a.line1, a.line2, a.city, a.region, a.postalCode, a.country, a.phone, a.createdAt, a.updatedAt];
}

export class SqliteCustomerStore implements CustomerStore {
  private constructor(private readonly ctx: ServiceDb) {}

  static open(dataDir: string, opts: ServiceDbOptions = {}): SqliteCustomerStore {
    return new SqliteCustomerStore(openServiceDb(path.join(dataDir, 'store', 'customers.db'), DDL, CUSTOMERS_DB_VERSION, opts));
  }

  get(customerId: string): Promise<Customer | undefined> {
    return read(() => {
      const r = this.ctx.db.prepare('SELECT * FROM customers WHERE customer_id = ?').get(customerId) as
        | { customer_id: string; name: string; default_address_id: string | null; created_at: number; updated_at: number }
        | undefined;
      return r ? { customerId: r.customer_id, name: r.name, defaultAddressId: r.default_address_id, createdAt: r.created_at, updatedAt: r.updated_at } : undefined;
    });
  }

  async put(c: Customer): Promise<void> {
    await write(this.ctx, () =>
      this.ctx.db
        .prepare('INSERT OR REPLACE INTO customers (customer_id, name, default_address_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)')
        .run(c.customerId, c.name, c.defaultAddressId, c.createdAt, c.updatedAt),
    );
  }

  listAddresses(customerId: string): Promise<Address[]> {
    return read(() => (this.ctx.db.prepare('SELECT * FROM addresses WHERE customer_id = ? ORDER BY address_id').all(customerId) as AddressRow[]).map(toAddress));
  }

  getAddress(customerId: string, addressId: string): Promise<Address | undefined> {
    return read(() => {
      const r = this.ctx.db.prepare('SELECT * FROM addresses WHERE customer_id = ? AND address_id = ?').get(customerId, addressId) as AddressRow | undefined;
      return r ? toAddress(r) : undefined;
    });
  }

  async addAddress(a: Address, max: number): Promise<boolean> {
    const { db } = this.ctx;
    return write(this.ctx, () =>
      db.transaction((): boolean => {
        const exists = db.prepare('SELECT 1 FROM addresses WHERE customer_id = ? AND address_id = ?').get(a.customerId, a.addressId);
        if (!exists) {
          const { n } = db.prepare('SELECT count(*) AS n FROM addresses WHERE customer_id = ?').get(a.customerId) as { n: number };
          if (n >= max) return false;
        }
        db.prepare('INSERT OR REPLACE INTO addresses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(...params(a));
        return true;
      }).immediate(),
    );
  }

  async updateAddress(a: Address): Promise<boolean> {
    const p = params(a);
    return write(this.ctx, () =>
      this.ctx.db
        .prepare(`UPDATE addresses SET label = ?, name = ?, line1 = ?, line2 = ?, city = ?, region = ?, postal_code = ?, country = ?, phone = ?, updated_at = ?
          WHERE customer_id = ? AND address_id = ?`)
        .run(...p.slice(2, 11), a.updatedAt, a.customerId, a.addressId).changes > 0,
    );
  }

  async removeAddress(customerId: string, addressId: string): Promise<boolean> {
    return write(this.ctx, () => this.ctx.db.prepare('DELETE FROM addresses WHERE customer_id = ? AND address_id = ?').run(customerId, addressId).changes > 0);
  }

  close(): Promise<void> {
    return this.ctx.close().catch((err: unknown) => {
      throw storageError(err);
    });
  }
}
