// The nginx configurations the ingress benches measure kdp against (bench/ingress/run.ts, instructions.ts): the
// backend every proxy forwards to, the two nginx proxy references, and the certificate they all serve.
//   nginx          the few proxy headers a hand-written config sets (Host, X-Forwarded-For, X-Real-IP)
//   nginx-ingress  what ingress-nginx's nginx.tmpl sets in every location: X-Request-ID (the client's, else
//                  $request_id), X-Real-IP, X-Forwarded-For/-Host/-Port/-Proto/-Scheme, X-Scheme,
//                  X-Original-Forwarded-For, Proxy "" (the headers kdp sends), proxy_buffering off; without its Lua
//                  balancer and monitor, which nginx-light cannot run
// Both keep 320 idle upstream connections (ingress-nginx's upstream-keepalive-connections) and terminate TLS as
// ingress-nginx does (TLS 1.2 and 1.3, a shared session cache, no session tickets).

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { selfSigned } from '../../ingress/default-cert.ts';

/** One certificate for every TLS server of a run (ECDSA P-256, for bench.local), written into `dir`. */
export async function benchCert(dir: string): Promise<{ crt: string; key: string }> {
  const crt = join(dir, 'bench.crt');
  const key = join(dir, 'bench.key');
  const pair = await selfSigned('bench.local', ['bench.local'], 1);
  await writeFile(crt, pair.certPem);
  await writeFile(key, pair.keyPem);
  return { crt, key };
}

/** the backend's answer: 200 with a 100-byte body */
export const BODY = 'x'.repeat(99) + '\n';

export type NginxRef = 'nginx' | 'nginx-ingress';

const LOCATION: Record<NginxRef, string> = {
  nginx: `location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Real-IP $remote_addr; }`,
  'nginx-ingress': `location / { set $pass_access_scheme $scheme; set $pass_server_port $server_port; set $best_http_host $http_host;
      set $pass_port $pass_server_port; client_max_body_size 1m;
      proxy_set_header Host $best_http_host; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Request-ID $req_id; proxy_set_header X-Real-IP $remote_addr; proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Host $best_http_host; proxy_set_header X-Forwarded-Port $pass_port;
      proxy_set_header X-Forwarded-Proto $pass_access_scheme; proxy_set_header X-Forwarded-Scheme $pass_access_scheme;
      proxy_set_header X-Scheme $pass_access_scheme; proxy_set_header X-Original-Forwarded-For $http_x_forwarded_for;
      proxy_set_header Proxy ""; proxy_connect_timeout 5s; proxy_send_timeout 60s; proxy_read_timeout 60s;
      proxy_buffering off; proxy_buffer_size 4k; proxy_buffers 4 4k; proxy_request_buffering on; proxy_http_version 1.1;
      proxy_pass http://bench; }`,
};

// ingress-nginx's maps: the client's X-Request-ID or a random one; no Connection header upstream (keep-alive)
const MAPS = `map $http_x_request_id $req_id { default $http_x_request_id; "" $request_id; }
  map $http_upgrade $connection_upgrade { default upgrade; "" ""; }`;

/**
 * A whole nginx.conf: `workers` worker processes (0: no master, one process doing everything, as a profiler wants)
 * whose temp files and pid live in `dir`, around the http-level `body`.
 */
export function nginxConf(dir: string, workers: number, body: string): string {
  return `worker_processes ${Math.max(1, workers)};
daemon off;
master_process ${workers === 0 ? 'off' : 'on'};
user root;
pid ${dir}/nginx-${Math.random().toString(36).slice(2)}.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  # HTTP/2 clients (h2load) do not reconnect after nginx's default 1000 requests per connection
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/tmp-body;
  proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi;
  scgi_temp_path ${dir}/tmp-scgi;
  ${body}
}
`;
}

/** The backend's server block: 200 with BODY on every path. */
export function backendServer(port: number): string {
  return `server { listen 127.0.0.1:${port}; keepalive_requests 100000; location / { return 200 "${BODY.trimEnd()}\\n"; } }`;
}

/**
 * A proxy reference's http-level body: bench.local -> the backend, any other host -> 404, on `port` (and on
 * `tlsPort` with TLS and HTTP/2 when a certificate is given).
 */
export function proxyServers(
  kind: NginxRef,
  backendPort: number,
  port: number,
  tls?: { port: number; crt: string; key: string },
): string {
  const ssl = tls
    ? `listen 127.0.0.1:${tls.port} ssl http2 DEFAULT; ssl_certificate ${tls.crt}; ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m; ssl_session_tickets off;`
    : '';
  return `upstream bench { server 127.0.0.1:${backendPort}; keepalive 320; keepalive_requests 10000; keepalive_timeout 60s; }
  ${kind === 'nginx-ingress' ? MAPS : ''}
  server { listen 127.0.0.1:${port} default_server; ${ssl.replace('DEFAULT', 'default_server')} return 404; }
  server { listen 127.0.0.1:${port}; ${ssl.replace(' DEFAULT', '')} server_name bench.local;
    ${LOCATION[kind]} }`;
}
