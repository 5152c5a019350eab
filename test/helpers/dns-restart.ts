// kdp dns restart after kill -9, shared by the e2e test (dns-faults) and the benchmark (bench:dns-restart):
// one cluster name to ask for, a Corefile with the kubeadm plugins on fixed loopback ports, and the time from
// spawning `kdp dns` in a lab node to its first right answer.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { kdpDnsArgv } from './kdp-dns.ts';
import { runQueueMs } from './run-queue.ts';

const NAME = 'web.ns.svc.cluster.local';
const ANSWER = '10.96.0.10';

/** Writes DIR/manifests/web.yaml and DIR/Corefile; returns the `kdp dns` argv that serves them. */
export function writeRestartFixture(dir: string): string[] {
  const manifests = join(dir, 'manifests');
  mkdirSync(manifests, { recursive: true });
  writeFileSync(
    join(manifests, 'web.yaml'),
    `apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ns}\nspec:\n  clusterIP: ${ANSWER}\n  clusterIPs: [${ANSWER}]\n  ports: [{name: http, port: 80}]\n`,
  );
  writeFileSync(
    join(dir, 'Corefile'),
    '.:53 {\n    errors\n    health 127.0.0.1:8080\n    ready 127.0.0.1:8181\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    prometheus 127.0.0.1:9153\n    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }\n    loadbalance\n}\n',
  );
  return kdpDnsArgv(join(dir, 'Corefile'), manifests);
}

/**
 * ms from spawning ARGV in the node's namespace to its first right answer (dig from the node every POLL ms).
 * Also: `askedMs`, from spawning to the start of the dig that got it (the probe's own run is not the server's
 * time), and `queuedMs`, how much of that the server's main thread spent waiting for a CPU (undefined when the
 * kernel does not say; see run-queue.ts).
 */
export async function timeToFirstAnswer(
  lab: Lab,
  node: NodePlan,
  argv: readonly string[],
  limitMs: number,
  pollMs: number,
): Promise<{ ms: number; child: Spawned; askedMs: number; queuedMs: number | undefined }> {
  const t0 = performance.now();
  const child = lab.spawn(node.ns, [...argv]);
  for (;;) {
    const askedMs = performance.now() - t0;
    const queuedMs = runQueueMs(child.pid);
    const r = await lab.exec(node.ns, ['dig', `@${node.ip4}`, '+short', '+tries=1', '+timeout=1', NAME], {
      allowFailure: true,
    });
    if (r.stdout.trim() === ANSWER) return { ms: performance.now() - t0, child, askedMs, queuedMs };
    if (performance.now() - t0 > limitMs)
      throw new Error(`kdp dns did not answer in ${limitMs / 1000} s: ${child.output().slice(-2000)}`);
    await new Promise((res) => setTimeout(res, pollMs));
  }
}
