// `photoAdded` through Apollo's WebSocket links: GraphQLWsLink over `graphql-ws`
// (protocol "graphql-transport-ws") or the legacy WebSocketLink over
// `subscriptions-transport-ws` (protocol "graphql-ws"), with `ws` as Node's WebSocket.
//
// The script subscribes as a member and prints {"type":"ready"} once the socket is
// acknowledged; the Rust side waits until the server counts the subscription as live, uploads
// a photo as another member, and the script prints the event it received, after checking that
// Apollo's cache normalised the photo.
//
// Input: { url, token, sessionId, link: "graphql-ws" | "legacy" }.

import { ApolloClient, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions/index.js";
import { WebSocketLink } from "@apollo/client/link/ws/index.js";
import { createClient } from "graphql-ws";
import { SubscriptionClient } from "subscriptions-transport-ws";
import WebSocket from "ws";

import { bearer, check, emit, fail, follow, input, run, show } from "./support.mjs";

const { url, token, sessionId, link: kind } = input("url", "token", "sessionId", "link");
const wsUrl = `${url.replace(/^http/, "ws")}/graphql`;

const PHOTO_ADDED = gql`
  subscription LivePhotos($sessionId: ID!) {
    photoAdded(sessionId: $sessionId) {
      cursor
      photo {
        id
        status
        url
        uploader {
          id
          name
        }
      }
    }
  }
`;

const ready = () => emit({ type: "ready" });

/** The link and a function that closes its socket. */
function makeLink() {
  if (kind === "graphql-ws") {
    const client = createClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: bearer(token),
      // A test must see a dropped socket as a failure, not quietly reconnect.
      retryAttempts: 0,
      on: {
        connected: ready,
        closed: (event) => {
          if (!closing) fail(`the socket closed: ${event?.code} ${event?.reason}`);
        },
      },
    });
    return { link: new GraphQLWsLink(client), close: () => client.dispose() };
  }
  if (kind === "legacy") {
    const client = new SubscriptionClient(
      wsUrl,
      {
        reconnect: false,
        // The socket must be open within `minTimeout` (1 s by default) or the client drops
        // it: too short on a loaded test machine, where loading the modules alone can take
        // that long.
        minTimeout: 10_000,
        connectionParams: bearer(token),
        connectionCallback: (error) => {
          if (error) fail(`connection refused: ${show(error)}`);
          else ready();
        },
      },
      WebSocket,
    );
    client.onDisconnected(() => {
      if (!closing) fail("the socket closed");
    });
    return { link: new WebSocketLink(client), close: () => client.close() };
  }
  return fail(`unknown link ${kind}`);
}

let closing = false;

run(async () => {
  const { link, close } = makeLink();
  const apollo = new ApolloClient({ link, cache: new InMemoryCache() });
  const events = follow(
    apollo.subscribe({ query: PHOTO_ADDED, variables: { sessionId } }),
    "photoAdded",
  );
  const { data, errors } = await events.waitFor(() => true, 25);
  check(!errors, () => `the subscription delivered errors: ${show(errors)}`);
  const event = data?.photoAdded;
  check(
    event?.photo?.status === "READY" && event.cursor && event.photo.url,
    () => `unexpected event ${show(data)}`,
  );
  // The subscription's result is written to the cache like a query's, under Photo:<id>.
  const cached = apollo.cache.extract()[`Photo:${event.photo.id}`];
  check(
    cached?.status === "READY" && cached.url === event.photo.url,
    () => `Photo:${event.photo.id} is not in the cache: ${show(apollo.cache.extract())}`,
  );

  events.unsubscribe();
  closing = true;
  close();
  return { event, cached: cached.__typename === "Photo" };
});
