// What the page script needs from the bundle, and nothing else: GraphiQL, the fetcher that
// speaks GraphQL over HTTP and graphql-transport-ws (graphql-ws is bundled because the
// toolkit loads it with a dynamic import), and React to render it.
export { createElement } from 'react';
export { createRoot } from 'react-dom/client';
export { GraphiQL } from 'graphiql';
export { createGraphiQLFetcher } from '@graphiql/toolkit';
// The nonce of the page's style policy, for the <style> element GraphiQL's dialogs add
// (react-style-singleton, through react-remove-scroll, reads it from here).
export { setNonce } from 'get-nonce';
