// A WebSocket client for ingress e2e tests: connects, sends "n" every --every ms for --seconds and prints
// each reply on its own line; prints "open", and "closed CODE" if the socket closes before the end.
//   node ingress/testing/ws-client.ts --url ws://198.18.0.11/ws --host ws.test --seconds 6
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    seconds: { type: 'string', default: '5' },
    every: { type: 'string', default: '100' },
  },
  strict: true,
});
const ws = new WebSocket(values.url!);
let n = 0;
let timer: NodeJS.Timeout | undefined;
ws.addEventListener('open', () => {
  process.stdout.write('open\n');
  timer = setInterval(() => ws.send(String(n++)), Number(values.every));
});
ws.addEventListener('message', (e) => process.stdout.write(`${String(e.data)}\n`));
ws.addEventListener('close', (e) => {
  process.stdout.write(`closed ${e.code}\n`);
  if (timer) clearInterval(timer);
  process.exit(1);
});
ws.addEventListener('error', () => process.stdout.write('error\n'));
setTimeout(
  () => {
    if (timer) clearInterval(timer);
    process.stdout.write('done\n');
    process.exit(0);
  },
  Number(values.seconds) * 1000,
);
