// Starts GraphiQL on Photon's /graphql page. It is a file of its own, not an inline script,
// so that the page's Content-Security-Policy can allow scripts from this server only.
(function () {
  'use strict';

  var root = document.getElementById('graphiql');
  var lib = window.PhotonGraphiQL;
  if (!root || !lib) {
    if (root) root.textContent = 'GraphiQL failed to load.';
    return;
  }

  // Left in the Headers tab untouched, this line is not sent: a request carrying it would
  // be refused as a whole (a bad token is never read as "anonymous"), schema included.
  var PLACEHOLDER = 'Bearer <access token>';
  var DEFAULT_HEADERS = '{\n  "Authorization": "' + PLACEHOLDER + '"\n}\n';

  function defaultQuery() {
    var devSignIn = root.getAttribute('data-dev-sign-in') === 'true';
    var secs = Number(root.getAttribute('data-token-ttl-secs')) || 900;
    var lifetime = secs % 60 === 0 ? secs / 60 + ' minutes' : secs + ' seconds';
    var signIn = devSignIn
      ? [
        '# Sign in (this server has the dev sign-in on):',
        '#',
        '#   mutation { devSignIn(email: "ana@example.com", name: "Ana") {',
        '#     accessToken refreshToken } }',
      ]
      : [
        '# Sign in with the app, or on the server run',
        '#',
        '#   photon token --email ana@example.com',
      ];
    return signIn.concat([
      '#',
      '# and put the access token in the Headers tab below:',
      '#',
      '#   { "Authorization": "Bearer <accessToken>" }',
      '#',
      '# Headers are kept in this browser, across tabs and reloads.',
      '# An access token lasts ' + lifetime + '; trade the refresh token',
      '# for a new pair with',
      '#',
      '#   mutation { refreshToken(refreshToken: "<refreshToken>") {',
      '#     accessToken refreshToken } }',
      '#',
      '# Subscriptions run over a WebSocket to this server, with the',
      '# same headers.',
      '',
      '{ me { id name email } }',
      '',
    ]).join('\n');
  }

  // GraphiQL's dialogs add a <style> element; the page's policy accepts it with this nonce.
  lib.setNonce(root.getAttribute('data-style-nonce') || '');

  // Relative to wherever the browser reached this page, so a proxy in front changes nothing.
  var endpoint = new URL(root.getAttribute('data-endpoint') || '/graphql', window.location.href);
  var socket = new URL(endpoint.href);
  socket.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';

  var fetcher = lib.createGraphiQLFetcher({
    url: endpoint.href,
    // graphql-transport-ws; the Headers tab becomes the connection_init payload.
    subscriptionUrl: socket.href,
  });

  function withoutPlaceholder(headers) {
    if (!headers) return headers;
    var kept = {};
    Object.keys(headers).forEach(function (name) {
      var value = headers[name];
      var untouched = name.toLowerCase() === 'authorization' &&
        typeof value === 'string' && value.trim() === PLACEHOLDER;
      if (!untouched) kept[name] = value;
    });
    return kept;
  }

  function photonFetcher(params, options) {
    var opts = Object.assign({}, options);
    opts.headers = withoutPlaceholder(opts.headers);
    return fetcher(params, opts);
  }

  lib.createRoot(root).render(
    lib.createElement(lib.GraphiQL, {
      fetcher: photonFetcher,
      defaultQuery: defaultQuery(),
      defaultHeaders: DEFAULT_HEADERS,
      // In localStorage, on this origin only; GraphiQL's settings can turn it off.
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: 'headers',
    })
  );
})();
