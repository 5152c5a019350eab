// The API double as a process of its own, for tests that run it inside a lab namespace:
//   node test/apiserver/serve.ts --host ADDR [--socket PATH] [--seed FILE]
// Listens on TCP ADDR on a free port (printed) and, with --socket, on a unix socket too (how a process outside
// the namespace drives it: create/update/delete over HTTP through the file system, never over the network).
// --seed FILE: a JSON array of API objects created before listening. Prints one line
// `api-double listening port=N` once both listeners are up; SIGTERM/SIGINT close it.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ApiDouble } from './server.ts';
import type { Obj } from './server.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    socket: { type: 'string' },
    seed: { type: 'string' },
    'bookmark-ms': { type: 'string' },
  },
  strict: true,
});
const api = await ApiDouble.start({
  host: values.host,
  ...(values['bookmark-ms'] ? { bookmarkIntervalMs: Number(values['bookmark-ms']) } : {}),
});
if (values.seed) {
  for (const o of JSON.parse(readFileSync(values.seed, 'utf8')) as Obj[]) api.create(String(o.kind), o);
}
if (values.socket) await api.listenUnix(values.socket);
process.stdout.write(`api-double listening port=${api.port} objects=${api.stats.writes}\n`);
const stop = (): void => {
  void api.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
