// openai_client.mjs - OpenAI's own Node client library (the `openai` npm
// package, installed by `npm ci` in this folder) against `gpt serve` on a
// loopback port: a completion, a streamed one, n = 3, logprobs, stop, echo,
// the model list, and the errors it raises for a bad request, a wrong key
// and an unknown model. Prints PASS/FAIL lines for tests/run.sh.
//
//   node tests/server/openai_client.mjs PORT KEY
import OpenAI from 'openai';

const [port, key] = process.argv.slice(2);
const baseURL = `http://127.0.0.1:${port}/v1`;
const client = new OpenAI({ baseURL, apiKey: key, maxRetries: 0, timeout: 120000 });
const prompt = 'And God said';
let failed = 0;

function check(name, ok, detail) {
  if (ok) console.log(`PASS openai_${name}`);
  else {
    failed++;
    console.log(`FAIL openai_${name}: ${JSON.stringify(detail).slice(0, 600)}`);
  }
}

async function run(name, fn) {
  try {
    await fn();
  } catch (e) {
    check(name, false, `${e.constructor.name}: ${e.message}`);
  }
}

async function streamText(params) {
  const s = await client.completions.create({ ...params, stream: true });
  const texts = [];
  const finish = [];
  let usage = null;
  for await (const chunk of s) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      texts[c.index] = (texts[c.index] ?? '') + c.text;
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  return { texts, finish, usage };
}

async function expectError(name, cls, status, fn, more) {
  try {
    await fn();
    check(name, false, 'no error was raised');
  } catch (e) {
    check(name, e instanceof cls && e.status === status && (!more || more(e)),
      { cls: e.constructor.name, status: e.status, message: e.message, param: e.param, code: e.code });
  }
}

const base = { model: 'demo', prompt, max_tokens: 24, seed: 7 };
let plain = null;

await run('completion', async () => {
  const r = await client.completions.create(base);
  plain = r.choices[0].text;
  check('completion', r.object === 'text_completion' && r.model === 'demo' && r.choices.length === 1 &&
    r.choices[0].index === 0 && plain.length > 0 && ['stop', 'length'].includes(r.choices[0].finish_reason) &&
    r.usage.prompt_tokens === 3 && r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, r);
});

await run('stream', async () => {
  const { texts, finish, usage } = await streamText({ ...base, stream_options: { include_usage: true } });
  check('stream', texts[0] === plain && ['stop', 'length'].includes(finish[0]) && usage && usage.prompt_tokens === 3,
    { texts, plain, finish, usage });
});

await run('n_3', async () => {
  const r = await client.completions.create({ ...base, n: 3 });
  const byIndex = [...r.choices].sort((a, b) => a.index - b.index).map((c) => c.text);
  const alone = [];
  for (let i = 0; i < 3; i++) alone.push((await client.completions.create({ ...base, seed: 7 + i })).choices[0].text);
  check('n_3', r.choices.length === 3 && byIndex.join('\u0000') === alone.join('\u0000') && byIndex[0] === plain,
    { byIndex, alone });
  const s = await streamText({ ...base, n: 3 });
  check('n_3_stream', s.texts.join('\u0000') === alone.join('\u0000'), s.texts);
});

await run('logprobs', async () => {
  const r = await client.completions.create({ ...base, max_tokens: 6, logprobs: 3, temperature: 0 });
  const lp = r.choices[0].logprobs;
  check('logprobs', lp && lp.tokens.length === 6 && lp.token_logprobs.length === 6 && lp.top_logprobs.length === 6 &&
    lp.text_offset.length === 6 && lp.tokens.join('') === r.choices[0].text &&
    lp.top_logprobs.every((d, i) => Object.keys(d).length === 3 && Math.max(...Object.values(d)) === lp.token_logprobs[i]),
  lp);
});

await run('stop', async () => {
  const greedy = (await client.completions.create({ ...base, temperature: 0, max_tokens: 30 })).choices[0].text;
  const stop = greedy.slice(10, 14);
  const r = await client.completions.create({ ...base, temperature: 0, max_tokens: 30, stop: [stop] });
  check('stop', r.choices[0].text === greedy.slice(0, greedy.indexOf(stop)) && r.choices[0].finish_reason === 'stop',
    { greedy, stop, got: r.choices[0] });
});

await run('echo', async () => {
  const r = await client.completions.create({ ...base, echo: true, logprobs: 1, max_tokens: 4 });
  const lp = r.choices[0].logprobs;
  check('echo', r.choices[0].text.startsWith(prompt) && lp.tokens.length === 3 + 4 && lp.token_logprobs[0] === null &&
    lp.text_offset[0] === 0, r.choices[0]);
});

await run('models', async () => {
  const list = await client.models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  check('models', ids.length === 1 && ids[0] === 'demo', ids);
});

await expectError('bad_request', OpenAI.BadRequestError, 400,
  () => client.completions.create({ ...base, temperature: 'hot' }), (e) => e.param === 'temperature');
await expectError('bad_request_n', OpenAI.BadRequestError, 400,
  () => client.completions.create({ ...base, n: 1000 }));
await expectError('unknown_model', OpenAI.NotFoundError, 404,
  () => client.completions.create({ ...base, model: 'davinci-002' }), (e) => e.code === 'model_not_found');
await expectError('wrong_key', OpenAI.AuthenticationError, 401,
  () => new OpenAI({ baseURL, apiKey: 'sk-wrong', maxRetries: 0 }).completions.create(base));

process.exit(failed ? 1 : 0);
