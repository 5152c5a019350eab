// The Gateway listener set: which sockets to open, close and keep (pure diff), and the manager carrying it out
// over fake listener servers (order, table swaps, failures retried on the next apply).
import t from 'tap';
import { GatewayListeners, diffListeners, listenerId } from '../../../../ingress/gateway/listeners.ts';
import type { ListenerServer, ListenerTable } from '../../../../ingress/gateway/listeners.ts';
import type { RouteTable } from '../../../../ingress/types.ts';

const table = (version: number): RouteTable => ({ hosts: new Map(), wildcards: new Map(), certs: new Map(), version });
const l = (address: string, port: number, protocol: 'HTTP' | 'HTTPS' = 'HTTP', version = 1): ListenerTable => ({
  address,
  port,
  protocol,
  table: table(version),
});

t.test('listenerId', async (t) => {
  t.equal(listenerId(l('127.0.10.5', 80)), 'HTTP 127.0.10.5:80');
  t.equal(listenerId(l('fd00::1', 443, 'HTTPS')), 'HTTPS [fd00::1]:443');
});

t.test('diff: open new, close gone, keep the rest; a protocol change is a close and an open', async (t) => {
  const d = diffListeners(
    ['HTTP 10.0.0.1:80', 'HTTP 10.0.0.2:80', 'HTTPS 10.0.0.1:443'],
    [l('10.0.0.1', 80), l('10.0.0.1', 443, 'HTTP'), l('10.0.0.3', 80)],
  );
  t.same(d.keep.map(listenerId), ['HTTP 10.0.0.1:80']);
  t.same(d.open.map(listenerId), ['HTTP 10.0.0.1:443', 'HTTP 10.0.0.3:80']);
  t.same([...d.close].sort(), ['HTTP 10.0.0.2:80', 'HTTPS 10.0.0.1:443']);
  t.same(d.clash, []);
});

t.test('diff: a second table on an address and port already taken is a clash, not a second socket', async (t) => {
  const d = diffListeners([], [l('10.0.0.1', 80), l('10.0.0.1', 80, 'HTTPS'), l('10.0.0.2', 80)]);
  t.same(d.open.map(listenerId), ['HTTP 10.0.0.1:80', 'HTTP 10.0.0.2:80']);
  t.same(d.clash.map(listenerId), ['HTTPS 10.0.0.1:80']);
});

t.test('diff: same set, nothing to do', async (t) => {
  const d = diffListeners(['HTTP 10.0.0.1:80'], [l('10.0.0.1', 80)]);
  t.same([d.open.length, d.close.length, d.keep.length], [0, 0, 1]);
});

class FakeServer implements ListenerServer {
  tables: number[] = [];
  closed: number | undefined;
  readonly id: string;
  readonly events: string[];
  readonly fail: Set<string>;
  constructor(id: string, events: string[], fail: Set<string>) {
    this.id = id;
    this.events = events;
    this.fail = fail;
  }
  setTable(t: RouteTable): void {
    this.tables.push(t.version);
  }
  async listen(): Promise<void> {
    if (this.fail.has(this.id)) {
      this.events.push(`fail ${this.id}`);
      throw new Error('listen EADDRNOTAVAIL');
    }
    this.events.push(`open ${this.id}`);
  }
  async close(graceMs: number): Promise<void> {
    this.closed = graceMs;
    this.events.push(`close ${this.id}`);
  }
}

t.test('the manager: opens, swaps tables in place, closes before it opens, retries failures', async (t) => {
  const events: string[] = [];
  const fail = new Set<string>();
  const made = new Map<string, FakeServer>();
  const m = new GatewayListeners(
    (x) => {
      const s = new FakeServer(listenerId(x), events, fail);
      made.set(listenerId(x), s);
      return s;
    },
    { graceMs: 1234 },
  );
  let r = await m.apply([l('10.0.0.1', 80), l('10.0.0.2', 80)]);
  t.same(r.serving, ['HTTP 10.0.0.1:80', 'HTTP 10.0.0.2:80']);
  t.same(events.splice(0), ['open HTTP 10.0.0.1:80', 'open HTTP 10.0.0.2:80']);
  const first = made.get('HTTP 10.0.0.1:80')!;

  // 10.0.0.1:80 stays (new table, same server), .2 goes, .1:80 as HTTPS on another port comes; .3 fails
  fail.add('HTTP 10.0.0.3:80');
  r = await m.apply([l('10.0.0.1', 80, 'HTTP', 2), l('10.0.0.1', 443, 'HTTPS', 2), l('10.0.0.3', 80)]);
  t.same(events.splice(0), [
    'close HTTP 10.0.0.2:80',
    'open HTTPS 10.0.0.1:443',
    'fail HTTP 10.0.0.3:80',
    'close HTTP 10.0.0.3:80', // the server that failed to listen is released
  ]);
  t.equal(made.get('HTTP 10.0.0.1:80'), first, 'kept: the same server');
  t.same(first.tables, [1, 2], 'its table swapped');
  t.equal(made.get('HTTP 10.0.0.2:80')!.closed, 1234, 'closed with the grace period');
  t.same(r.serving, ['HTTP 10.0.0.1:80', 'HTTPS 10.0.0.1:443']);
  t.same([...r.failed.keys()], ['HTTP 10.0.0.3:80']);
  t.match(r.failed.get('HTTP 10.0.0.3:80'), /EADDRNOTAVAIL/);

  // the failed one is tried again on the next apply
  fail.clear();
  r = await m.apply([l('10.0.0.1', 80, 'HTTP', 3), l('10.0.0.1', 443, 'HTTPS', 3), l('10.0.0.3', 80)]);
  t.same(events.splice(0), ['open HTTP 10.0.0.3:80']);
  t.same(r.failed.size, 0);

  // a port that changes protocol: closed first, then opened
  r = await m.apply([l('10.0.0.1', 80, 'HTTPS', 4)]);
  t.same(r.serving, ['HTTPS 10.0.0.1:80']);
  t.same(events.splice(0), [
    'close HTTP 10.0.0.1:80',
    'close HTTPS 10.0.0.1:443',
    'close HTTP 10.0.0.3:80',
    'open HTTPS 10.0.0.1:80',
  ]);
  await m.close(0);
  t.same(events.splice(0), ['close HTTPS 10.0.0.1:80']);
  r = await m.apply([l('10.0.0.9', 80)]);
  t.same(r.serving, [], 'nothing opens after close()');
});

t.test('applies run one at a time in call order', async (t) => {
  const events: string[] = [];
  const m = new GatewayListeners((x) => ({
    setTable: () => {},
    listen: async () => {
      await new Promise((r) => setTimeout(r, 5));
      events.push(`open ${listenerId(x)}`);
    },
    close: async () => void events.push(`close ${listenerId(x)}`),
  }));
  await Promise.all([m.apply([l('10.0.0.1', 80)]), m.apply([l('10.0.0.2', 80)])]);
  t.same(events, ['open HTTP 10.0.0.1:80', 'close HTTP 10.0.0.1:80', 'open HTTP 10.0.0.2:80']);
});
