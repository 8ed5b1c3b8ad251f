// Automatic persisted queries with Apollo's own link: a new query is sent by hash alone and
// missed (PERSISTED_QUERY_NOT_FOUND), the link retries with the full query, which registers
// it; from then on the hash alone is enough, over POST and, with `useGETForHashedQueries`,
// over GET. A GET miss falls back to a POST that registers the query, after which GET hits.
//
// Input: { url, token, sessionId, sessionTitle, userId }.

import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";
import {
  bearer,
  check,
  input,
  recordingFetch,
  requestsFor,
  run,
  sha256Hex,
  show,
} from "./support.mjs";

const { url, token, sessionId, sessionTitle, userId } = input(
  "url",
  "token",
  "sessionId",
  "sessionTitle",
  "userId",
);

const SESSION = gql`
  query ApqSession($id: ID!) {
    session(id: $id) {
      id
      title
    }
  }
`;
const ME = gql`
  query ApqMe {
    me {
      id
    }
  }
`;

/** A client whose every request is recorded in `log`. */
function client(log, useGETForHashedQueries) {
  const persisted = createPersistedQueryLink({ sha256: sha256Hex, useGETForHashedQueries });
  const http = new HttpLink({ uri: `${url}/graphql`, headers: bearer(token), fetch: recordingFetch(log) });
  return new ApolloClient({ link: persisted.concat(http), cache: new InMemoryCache() });
}

/** What one recorded request was, in APQ terms. */
function describe(entry) {
  const params = entry.method === "GET" ? new URL(entry.url).searchParams : null;
  const body = params
    ? {
        query: params.get("query") ?? undefined,
        extensions: params.get("extensions") ? JSON.parse(params.get("extensions")) : undefined,
      }
    : entry.body;
  const codes = (entry.response?.errors ?? []).map((e) => e.extensions?.code);
  return {
    method: entry.method,
    status: entry.status,
    hash: body?.extensions?.persistedQuery?.sha256Hash ?? null,
    withQuery: typeof body?.query === "string" && body.query.length > 0,
    codes,
    hasData: entry.response?.data != null,
  };
}

/** Asserts that `entries` are exactly `expected` (method, query sent or not, outcome). */
function expectWire(what, entries, expected) {
  const seen = entries.map(describe);
  check(
    seen.length === expected.length &&
      seen.every(
        (s, i) =>
          s.method === expected[i].method &&
          s.withQuery === expected[i].withQuery &&
          s.hash !== null &&
          (expected[i].miss
            ? s.codes.includes("PERSISTED_QUERY_NOT_FOUND") && !s.hasData
            : s.codes.length === 0 && s.hasData),
      ),
    () => `${what}: expected ${show(expected)} on the wire, saw ${show(seen)}`,
  );
  return seen;
}

async function session(apollo) {
  const { data, errors } = await apollo.query({
    query: SESSION,
    variables: { id: sessionId },
    fetchPolicy: "network-only",
  });
  check(!errors, () => `ApqSession failed: ${show(errors)}`);
  check(
    data?.session?.id === sessionId && data.session.title === sessionTitle,
    () => `ApqSession answered ${show(data)}`,
  );
}

run(async () => {
  const MISS = { method: "POST", withQuery: false, miss: true };
  const REGISTER = { method: "POST", withQuery: true };
  const HIT = { method: "POST", withQuery: false };
  const GET_MISS = { method: "GET", withQuery: false, miss: true };
  const GET_HIT = { method: "GET", withQuery: false };

  // POST: miss, then the retry with the full query registers it.
  const postLog = [];
  const post = client(postLog, false);
  await session(post).catch((error) => {
    throw new Error(`the first run of ApqSession failed: ${error.message}; wire: ${show(postLog.map(describe))}`);
  });
  const first = expectWire("first run", postLog, [MISS, REGISTER]);
  check(first[0].hash === first[1].hash, "the retry must carry the same hash");
  check(
    first[0].hash === sha256Hex(postLog[1].body.query),
    "the hash is the SHA-256 of the query text the link sent",
  );

  // POST again: the hash alone is a hit.
  await session(post);
  expectWire("second run", postLog.slice(2), [HIT]);

  // GET, from a fresh client (an app after a restart): a hit by hash alone.
  const getLog = [];
  const get = client(getLog, true);
  await session(get);
  expectWire("GET run", getLog, [GET_HIT]);

  // GET of a query the server has not seen: miss, POST to register, then GET hits.
  const me = async () => {
    const { data } = await get.query({ query: ME, fetchPolicy: "network-only" });
    check(data?.me?.id === userId, () => `ApqMe answered ${show(data)}`);
  };
  await me();
  await me();
  expectWire("ApqMe over GET", requestsFor(getLog, "ApqMe"), [GET_MISS, REGISTER, GET_HIT]);

  return {
    post: postLog.map(describe),
    get: getLog.map(describe),
  };
});
