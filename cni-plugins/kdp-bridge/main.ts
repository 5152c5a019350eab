// kdp-bridge CNI plugin entry point: the skeleton owns env, stdin, stdout and the exit code; the verbs
// load only for ADD/DEL/CHECK/STATUS/GC (VERSION stays cheap).
import { readFileSync } from 'node:fs';
import { runPlugin } from '../../src/cni/skel.ts';

void runPlugin(
  async () => {
    const { bridgeVerbs } = await import('../../src/cni/bridge.ts'); return bridgeVerbs();
  },
  {
    env: process.env,
    readStdin: () => readFileSync(0, 'utf8'),
    write: (s) => void process.stdout.write(s),
    writeTrace: (trace, req) => {
      trace.marks.unshift(['node start', performance.timeOrigin]);
      process.stderr.write(trace.line({ command: req.command, containerId: req.containerId }));
    },
  },
).then((code) => {
  process.exitCode = code;
});
