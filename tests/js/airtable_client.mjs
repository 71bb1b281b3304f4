// airtable.js (the official JavaScript client) against `beststag sandbox serve`.
//
// Driven by tests/sandbox/test_airtable_js.py, which starts the server and compares what this script
// prints with what pyairtable gets. Environment: AIRTABLE_ENDPOINT_URL, AIRTABLE_API_KEY, BASE_ID.
// Prints exactly one JSON object on stdout; exits 1 (with the error on stderr) when a step that must
// succeed fails.
import Airtable from 'airtable';

const endpointUrl = process.env.AIRTABLE_ENDPOINT_URL;
const apiKey = process.env.AIRTABLE_API_KEY;
const baseId = process.env.BASE_ID;
if (!endpointUrl || !apiKey || !baseId) {
  console.error('set AIRTABLE_ENDPOINT_URL, AIRTABLE_API_KEY and BASE_ID');
  process.exit(2);
}

// A 429 must surface, not be retried for minutes; 10 s is plenty for a loopback server.
const airtable = new Airtable({ apiKey, endpointUrl, noRetryIfRateLimited: true, requestTimeout: 10000 });
const base = airtable.base(baseId);

const plain = (record) => ({ id: record.id, fields: record.fields });
const described = (err) => ({
  error: err && err.error,
  message: err && err.message,
  statusCode: err && err.statusCode,
});

// Runs `fn`, which must fail; returns the error as plain data (or a marker when it did not fail).
async function expectError(fn) {
  try {
    const value = await fn();
    return { unexpectedSuccess: true, value: value && value.id ? plain(value) : null };
  } catch (err) {
    return described(err);
  }
}

const query = {
  filterByFormula: "{status} = 'Ativo'",
  sort: [{ field: 'Nome', direction: 'asc' }],
  pageSize: 10,
  fields: ['Nome', 'status'],
};

async function main() {
  const out = {};
  const users = base('Usuários');

  // select().all() pages through eachPage internally.
  const all = await users.select(query).all();
  out.filtered = all.map(plain);

  // The same query page by page: count the pages and their sizes.
  const pageSizes = [];
  const pagedIds = [];
  await users.select(query).eachPage((records, fetchNextPage) => {
    pageSizes.push(records.length);
    for (const r of records) pagedIds.push(r.id);
    fetchNextPage();
  });
  out.eachPage = { pages: pageSizes.length, pageSizes, ids: pagedIds };
  out.firstPage = (await users.select(query).firstPage()).map((r) => r.id);

  // Writes on Tarefas: create 2 (batch, POST /Tarefas/), update one (PATCH), replace one (PUT).
  const tasks = base('Tarefas');
  const created = await tasks.create([
    { fields: { 'Título': 'airtable.js: tarefa A', status: 'A fazer', prioridade: 'Alta', 'estimativa (h)': 2 } },
    { fields: { 'Título': 'airtable.js: tarefa B', 'descrição': 'criada pelo cliente oficial', status: 'A fazer' } },
  ]);
  out.created = created.map(plain);
  const [a, b] = created;

  out.updated = plain(await tasks.update(a.id, { status: 'Em andamento', 'estimativa (h)': 3.5 }));
  out.replaced = plain(await tasks.replace(b.id, { 'Título': 'airtable.js: tarefa B substituída' }));
  out.batchUpdated = (await tasks.update([{ id: a.id, fields: { prioridade: 'Urgente' } }])).map(plain);
  out.found = plain(await tasks.find(a.id));

  // Deleting both (DELETE /Tarefas?records[]=…), then the deleted id is a 404.
  out.deleted = (await tasks.destroy([a.id, b.id])).map((r) => r.id);
  out.findDeleted = await expectError(() => tasks.find(a.id));

  // Errors: a bad formula is a 422 whose type airtable.js keeps; an unknown record id is a 404.
  out.errors = {
    badFormula: await expectError(() => users.select({ filterByFormula: "{status} = 'Ativo" }).firstPage()),
    unknownRecord: await expectError(() => users.find('rec00000000000000')),
  };
  return out;
}

main().then(
  (out) => {
    process.stdout.write(`${JSON.stringify(out)}\n`);
  },
  (err) => {
    process.stderr.write(`airtable_client failed: ${JSON.stringify(described(err))}\n${(err && err.stack) || ''}\n`);
    process.exit(1);
  },
);
