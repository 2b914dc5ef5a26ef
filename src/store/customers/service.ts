/**
 * The Customers service: one customer record per Kindred account, keyed by the account's
 * user id (a Tindr user and a book buyer are the same person with one login; the customer
 * data lives apart, in this service's own store), and the customer's address book. Order
 * history belongs to the Orders service: `me` asks it over the bus.
 *
 * Requests on SUBJECTS.customers (queue group "customers"); `userId` is the caller as
 * verified from its bearer token at the edge.
 */
import type { Bus, Subscription } from '../../actors/bus.js';
import { KindredError, toKindredError } from '../../errors.js';
import { isId, newId } from '../../ids.js';
import { SUBJECTS } from '../contracts.js';

/** An order as the Orders service answers its `list` op (OrderView in src/store/contracts.ts); passed through unchanged. */
type OrderView = Record<string, unknown>;
import type { Address, Customer, CustomerStore } from './storage.js';
import { parseAddress, parseCustomerPatch } from './validate.js';

export const MAX_ADDRESSES = 20;
const RECENT_ORDERS = 10;

export type AddressView = Omit<Address, 'customerId'> & { isDefault: boolean };

export interface CustomerView {
  customerId: string;
  name: string;
  defaultAddressId: string | null;
  addresses: AddressView[];
}

export type CustomersRequest =
  | { op: 'get'; customerId: string }
  | { op: 'me'; userId: string }
  | { op: 'update'; userId: string; input: unknown }
  | { op: 'address.list'; userId: string }
  | { op: 'address.add'; userId: string; input: unknown }
  | { op: 'address.update'; userId: string; addressId: string; input: unknown }
  | { op: 'address.delete'; userId: string; addressId: string };

export interface CustomersReplies {
  get: { customer: CustomerView };
  /** orders: the newest orders from the Orders service; null (with ordersError) when it could not answer */
  me: { customer: CustomerView; orders: OrderView[] | null; ordersError?: string };
  update: { customer: CustomerView };
  'address.list': { addresses: AddressView[] };
  'address.add': { address: AddressView };
  'address.update': { address: AddressView };
  'address.delete': { deleted: true };
}

export interface CustomersServiceDeps {
  bus: Bus;
  store: CustomerStore;
  now?: () => number;
  ordersTimeoutMs?: number;
}

function requireId(v: unknown, field: string): string {
  if (typeof v !== 'string' || !isId(v)) throw new KindredError('INVALID_ARGUMENT', `${field}: must be an id`);
  return v;
}

function view(c: Customer, addresses: Address[]): CustomerView {
  return {
    customerId: c.customerId,
    name: c.name,
    defaultAddressId: c.defaultAddressId,
    addresses: addresses.map((a) => addressView(a, c.defaultAddressId)),
  };
}

function addressView(a: Address, defaultId: string | null): AddressView {
  const { customerId: _omit, ...rest } = a;
  void _omit;
  return { ...rest, isDefault: a.addressId === defaultId };
}

export class CustomersService {
  private sub: Subscription | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: CustomersServiceDeps) {
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    this.sub = this.deps.bus.subscribe(SUBJECTS.customers, (p) => this.handle(p as CustomersRequest), { queue: 'customers' });
  }

  stop(): void {
    this.sub?.unsubscribe();
  }

  async handle(req: CustomersRequest): Promise<unknown> {
    switch (req?.op) {
      case 'get': {
        const id = requireId(req.customerId, 'customerId');
        return { customer: await this.load(id) } satisfies CustomersReplies['get'];
      }
      case 'me':
        return this.me(requireId(req.userId, 'userId'));
      case 'update':
        return { customer: await this.update(requireId(req.userId, 'userId'), req.input) } satisfies CustomersReplies['update'];
      case 'address.list': {
        const c = await this.load(requireId(req.userId, 'userId'));
        return { addresses: c.addresses } satisfies CustomersReplies['address.list'];
      }
      case 'address.add':
        return { address: await this.addAddress(requireId(req.userId, 'userId'), req.input) } satisfies CustomersReplies['address.add'];
      case 'address.update':
        return { address: await this.updateAddress(requireId(req.userId, 'userId'), requireId(req.addressId, 'addressId'), req.input) } satisfies CustomersReplies['address.update'];
      case 'address.delete':
        await this.deleteAddress(requireId(req.userId, 'userId'), requireId(req.addressId, 'addressId'));
        return { deleted: true } satisfies CustomersReplies['address.delete'];
      default:
        throw new KindredError('UNKNOWN_OPERATION', 'customers: no such operation');
    }
  }

  /** The customer record, or a blank one (not stored until the customer changes something). */
  private async record(customerId: string): Promise<Customer> {
    const at = this.now();
    return (await this.deps.store.get(customerId)) ?? { customerId, name: '', defaultAddressId: null, createdAt: at, updatedAt: at };
  }

  private async load(customerId: string): Promise<CustomerView> {
    const [c, addresses] = await Promise.all([this.record(customerId), this.deps.store.listAddresses(customerId)]);
    return view(c, addresses);
  }

  private async me(userId: string): Promise<CustomersReplies['me']> {
    const customer = await this.load(userId);
    try {
      // The Orders service's `list` op (src/store/contracts.ts OrdersRequest); customerId = the user id.
      const reply = (await this.deps.bus.request(SUBJECTS.orders, { op: 'list', customerId: userId, limit: RECENT_ORDERS }, this.deps.ordersTimeoutMs ?? 5000)) as {
        orders: OrderView[];
      };
      return { customer, orders: reply.orders };
    } catch (err) {
      // The profile stays useful while Orders is down or not deployed; the client is told why.
      const k = toKindredError(err);
      return { customer, orders: null, ordersError: `${k.code}: ${k.message}` };
    }
  }

  private async update(userId: string, input: unknown): Promise<CustomerView> {
    const patch = parseCustomerPatch(input);
    const c = await this.record(userId);
    const next: Customer = { ...c, updatedAt: this.now() };
    if (patch.name !== undefined) next.name = patch.name;
    if (patch.defaultAddressId !== undefined) {
      if (patch.defaultAddressId !== null && !(await this.deps.store.getAddress(userId, patch.defaultAddressId))) {
        throw new KindredError('NOT_FOUND', 'defaultAddressId: no such address');
      }
      next.defaultAddressId = patch.defaultAddressId;
    }
    await this.deps.store.put(next);
    return this.load(userId);
  }

  private async addAddress(userId: string, input: unknown): Promise<AddressView> {
    const { fields, makeDefault } = parseAddress(input, true);
    const at = this.now();
    const address: Address = { addressId: newId(at), customerId: userId, createdAt: at, updatedAt: at, ...(fields as Required<typeof fields>) };
    if (!(await this.deps.store.addAddress(address, MAX_ADDRESSES))) {
      throw new KindredError('LIMIT_REACHED', `an address book holds at most ${MAX_ADDRESSES} addresses`);
    }
    const c = await this.record(userId);
    // The first address becomes the default, as does one added with "default": true.
    if (makeDefault || c.defaultAddressId === null) {
      await this.deps.store.put({ ...c, defaultAddressId: address.addressId, updatedAt: at });
      return addressView(address, address.addressId);
    }
    return addressView(address, c.defaultAddressId);
  }

  private async updateAddress(userId: string, addressId: string, input: unknown): Promise<AddressView> {
    const current = await this.deps.store.getAddress(userId, addressId);
    if (!current) throw new KindredError('NOT_FOUND', 'no such address');
    const { fields, makeDefault } = parseAddress(input, false, current.country);
    const next: Address = { ...current, ...fields, updatedAt: Math.max(this.now(), current.updatedAt + 1) };
    if (!(await this.deps.store.updateAddress(next))) throw new KindredError('NOT_FOUND', 'no such address');
    const c = await this.record(userId);
    if (makeDefault && c.defaultAddressId !== addressId) {
      await this.deps.store.put({ ...c, defaultAddressId: addressId, updatedAt: this.now() });
      return addressView(next, addressId);
    }
    return addressView(next, c.defaultAddressId);
  }

  private async deleteAddress(userId: string, addressId: string): Promise<void> {
    if (!(await this.deps.store.removeAddress(userId, addressId))) throw new KindredError('NOT_FOUND', 'no such address');
    const c = await this.deps.store.get(userId);
    if (c?.defaultAddressId === addressId) {
      const rest = await this.deps.store.listAddresses(userId);
      await this.deps.store.put({ ...c, defaultAddressId: rest[0]?.addressId ?? null, updatedAt: this.now() });
    }
  }
}
