// Apollo's BatchHttpLink: queries issued together travel as one POST whose body is an array,
// and each answer reaches the query that asked, in order, including a null for a session the
// viewer cannot see.
//
// Input: { url, token, userId, email, sessionId, sessionTitle }.

import { randomUUID } from "node:crypto";

import { ApolloClient, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { BatchHttpLink } from "@apollo/client/link/batch-http/index.js";
import { bearer, check, input, operationNames, recordingFetch, run, show } from "./support.mjs";

const { url, token, userId, email, sessionId, sessionTitle } = input(
  "url",
  "token",
  "userId",
  "email",
  "sessionId",
  "sessionTitle",
);

const ME = gql`
  query BatchMe {
    me {
      id
      email
    }
  }
`;
const SESSION = gql`
  query BatchSession($id: ID!) {
    session(id: $id) {
      id
      title
      viewerRole
    }
  }
`;
const SESSIONS = gql`
  query BatchSessions {
    sessions(first: 5) {
      edges {
        node {
          id
          title
        }
      }
    }
  }
`;

// A well-formed id of a session that does not exist: the API's ids are base64url("Type:uuid").
const unknownSession = Buffer.from(`Session:${randomUUID()}`).toString("base64url");

run(async () => {
  const log = [];
  const link = new BatchHttpLink({
    uri: `${url}/graphql`,
    headers: bearer(token),
    fetch: recordingFetch(log),
    batchMax: 10,
    // Long enough that four queries issued in one tick always share a batch.
    batchInterval: 50,
  });
  const client = new ApolloClient({ link, cache: new InMemoryCache() });

  const [me, session, sessions, unknown] = await Promise.all([
    client.query({ query: ME }),
    client.query({ query: SESSION, variables: { id: sessionId } }),
    client.query({ query: SESSIONS }),
    client.query({ query: SESSION, variables: { id: unknownSession } }),
  ]);

  check(log.length === 1, () => `expected one HTTP request, saw ${log.length}: ${show(log)}`);
  const [request] = log;
  check(request.method === "POST", () => `the batch went as ${request.method}`);
  check(
    Array.isArray(request.body) && request.body.length === 4,
    () => `the request body is not an array of four operations: ${show(request.body)}`,
  );
  check(
    Array.isArray(request.response) && request.response.length === 4,
    () => `the response is not an array of four results: ${show(request.response)}`,
  );
  check(request.status === 200, () => `the batch was answered ${request.status}`);

  check(
    me.data.me.id === userId && me.data.me.email === email,
    () => `BatchMe answered ${show(me.data)}`,
  );
  check(
    session.data.session?.id === sessionId &&
      session.data.session.title === sessionTitle &&
      session.data.session.viewerRole === "OWNER",
    () => `BatchSession answered ${show(session.data)}`,
  );
  const listed = sessions.data.sessions.edges.map((edge) => edge.node.id);
  check(
    listed.length === 1 && listed[0] === sessionId,
    () => `BatchSessions answered ${show(sessions.data)}`,
  );
  check(unknown.data.session === null, () => `the unknown session answered ${show(unknown.data)}`);

  return {
    requests: log.length,
    operations: operationNames(request),
    me: me.data.me,
    session: session.data.session,
    sessions: listed,
    unknown: unknown.data.session,
  };
});
