// What every scenario shares: its input, its output, failing clearly, a watchdog, and a
// `fetch` that records each request so a scenario can assert what went over the wire.
//
// Protocol with the Rust test that runs a scenario: the input is JSON in the environment
// variable APOLLO_TEST_INPUT (server URL, tokens, ids); the output is one JSON object per line
// on stdout (`{"type":"ready"}` when a subscription is waiting, `{"type":"result",…}` last);
// a failure is a message on stderr and a non-zero exit status.
//
// Apollo Client 3 is imported through its ES-module entry points (`…/index.js`): the build a
// bundler such as Metro uses, and one that does not pull in React.

import { createHash, randomBytes } from "node:crypto";

const scenario = process.argv[1]?.split("/").pop() ?? "scenario";

/** Exits non-zero with `message` on stderr. */
export function fail(message) {
  process.stderr.write(`${scenario}: FAILED: ${message}\n`);
  process.exit(1);
}

/** Fails with `message` unless `condition` holds. */
export function check(condition, message) {
  if (!condition) fail(typeof message === "function" ? message() : message);
}

/** Compact JSON for messages. */
export const show = (value) => JSON.stringify(value);

/** One line of output for the Rust side. */
export function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

/** The scenario's input; fails when a field it needs is missing. */
export function input(...required) {
  let parsed;
  try {
    parsed = JSON.parse(process.env.APOLLO_TEST_INPUT ?? "");
  } catch {
    fail("APOLLO_TEST_INPUT must hold the scenario's input as JSON");
  }
  for (const key of required) {
    check(parsed[key] !== undefined, `APOLLO_TEST_INPUT lacks ${key}`);
  }
  return parsed;
}

/**
 * Runs `body`, then exits 0 after its result line; any exception, or `seconds` passing,
 * fails the scenario. (The Rust side has a longer timeout of its own and kills the process.)
 */
export async function run(body, seconds = 30) {
  const watchdog = setTimeout(() => fail(`timed out after ${seconds} s`), seconds * 1000);
  try {
    const result = await body();
    clearTimeout(watchdog);
    // Milliseconds since the process started, module loading included.
    emit({ type: "result", ...result, ms: Math.round(performance.now()) });
    process.exit(0);
  } catch (error) {
    fail(error?.stack ?? String(error));
  }
}

/**
 * A `fetch` for Apollo's HTTP links that records every request (method, URL, parsed body)
 * and its answer (status, parsed body) in `log`.
 */
export function recordingFetch(log) {
  return async (url, init = {}) => {
    const entry = {
      method: (init.method ?? "GET").toUpperCase(),
      url: String(url),
      body: typeof init.body === "string" ? parseJson(init.body) : null,
    };
    const response = await fetch(url, init);
    entry.status = response.status;
    entry.response = parseJson(await response.clone().text());
    log.push(entry);
    return response;
  };
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The `operationName`s a recorded request carried (a batch carries several). */
export function operationNames(entry) {
  if (entry.method === "GET") {
    return [new URL(entry.url).searchParams.get("operationName")];
  }
  const bodies = Array.isArray(entry.body) ? entry.body : [entry.body];
  return bodies.map((body) => body?.operationName);
}

/** Requests in `log` that carried the operation `name`. */
export function requestsFor(log, name) {
  return log.filter((entry) => operationNames(entry).includes(name));
}

/** `Authorization` for a token, the way the app sends it. */
export function bearer(token) {
  return { authorization: `Bearer ${token}` };
}

/**
 * Follows an Apollo observable (a `watchQuery` or a subscription), keeping every value it
 * delivers; `waitFor(predicate)` resolves with the first value that satisfies it.
 */
export function follow(observable, what) {
  const values = [];
  let waiting = [];
  let failure = null;
  const subscription = observable.subscribe({
    next(value) {
      values.push(value);
      waiting = waiting.filter(({ predicate, resolve }) => {
        if (predicate(value)) {
          resolve(value);
          return false;
        }
        return true;
      });
    },
    error(error) {
      failure = error;
      for (const { reject } of waiting) reject(error);
      waiting = [];
    },
  });
  return {
    values,
    unsubscribe: () => subscription.unsubscribe(),
    waitFor(predicate, seconds = 10) {
      const seen = values.find(predicate);
      if (seen) return Promise.resolve(seen);
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${what}: no matching value within ${seconds} s; saw ${show(values)}`)),
          seconds * 1000,
        );
        waiting.push({
          predicate,
          resolve: (value) => {
            clearTimeout(timer);
            resolve(value);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
      });
    },
  };
}

/** Lower-case hex SHA-256, as persisted queries and photo uploads use it. */
export function sha256Hex(data) {
  return createHash("sha256").update(data).digest("hex");
}

/** Bytes that stand for a photo: the server checks their size and hash, not their format. */
export function photoBytes(length = 1024) {
  return randomBytes(length);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
