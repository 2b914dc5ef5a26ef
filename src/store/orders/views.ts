/** The public shape of an order (what REST answers and `order` events carry). */
import type { OrderView } from '../contracts.js';
import type { OrderRecord } from './storage.js';

export function orderView(o: OrderRecord): OrderView {
  const view: OrderView = {
    orderId: o.orderId,
    customerId: o.customerId,
    state: o.state,
    lines: o.lines,
    currency: o.currency,
    subtotalCents: o.subtotalCents,
    taxCents: o.taxCents,
    totalCents: o.totalCents,
    createdAt: o.createdAt,
    updatedAt: o.updatedAt,
  };
  if (o.shippingAddress) view.shippingAddress = o.shippingAddress;
  if (o.reason) view.reason = o.reason;
  // links are only good while the order stands
  if (o.fulfilment?.downloads && o.state === 'fulfilled') view.downloads = o.fulfilment.downloads;
  if (o.fulfilment?.shipment) view.shipment = o.fulfilment.shipment;
  return view;
}
