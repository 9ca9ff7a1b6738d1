// The GraphQL over HTTP audit (graphql-http's auditServer) against a running Dropdesk.
// Usage: node audit.mjs URL TOKEN. Exits 1 unless every MUST and every SHOULD passes; MAY items are listed.
import { auditServer } from 'graphql-http';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node audit.mjs URL TOKEN');
  process.exit(2);
}

// The audit speaks plain fetch; Dropdesk answers 401 without a bearer token, so each request carries one.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn });
let failed = 0;
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  if (result.status === 'ok') continue;
  const level = result.name.split(' ')[0];
  if (level === 'MUST' || level === 'SHOULD') failed += 1;
  console.log(`${result.status.toUpperCase()} ${result.name}: ${result.reason}`);
}
console.log(
  `graphql-http audit: ${counts.ok} ok, ${counts.notice} notice (MAY), ${counts.warn} warn (SHOULD), ` +
    `${counts.error} error (MUST)`,
);
process.exit(failed ? 1 : 0);
