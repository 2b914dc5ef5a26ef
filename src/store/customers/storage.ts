/**
 * What the Customers service stores: one customer record per Kindred account (keyed by the
 * account's user id) and that customer's address book. Embedded: `<dataDir>/store/customers.db`
 * (src/storage/sqlite/store-customers.ts); cluster: keyspace `<base>_customers`
 * (src/storage/cassandra/store-customers.ts). Both pass test/store/customers-contract.ts.
 */

export interface Customer {
  /** the Kindred account's user id */
  customerId: string;
  name: string;
  defaultAddressId: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface Address {
  addressId: string;
  customerId: string;
  /** e.g. "Home", "Work" */
  label: string;
  /** the recipient */
  name: string;
  line1: string;
  line2: string;
  city: string;
  region: string;
  postalCode: string;
  /** ISO 3166-1 alpha-2 */
  country: string;
  phone: string;
  createdAt: number;
  updatedAt: number;
}

export interface CustomerStore {
  get(customerId: string): Promise<Customer | undefined>;
  /** Creates or replaces the customer record. */
  put(customer: Customer): Promise<void>;
  listAddresses(customerId: string): Promise<Address[]>;
  getAddress(customerId: string, addressId: string): Promise<Address | undefined>;
  /**
   * Adds the address while the customer holds fewer than `max`; false at the limit. Re-adding
   * the same addressId replaces it and returns true.
   */
  addAddress(address: Address, max: number): Promise<boolean>;
  /** Replaces an existing address; false when it does not exist. */
  updateAddress(address: Address): Promise<boolean>;
  removeAddress(customerId: string, addressId: string): Promise<boolean>;
  close(): Promise<void>;
}
