// CloudBase AI GraphQL playground.
//
// Bundled by ../build.sh with esbuild into dist/assets/playground.{js,css}.
// The Rust server embeds dist/ and serves it at /playground; the GraphQL
// endpoint is /graphql (HTTP POST) and /graphql/ws (graphql-transport-ws).
// Everything is self-contained: no CDN, no web fonts from other origins.

import React, { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';
import 'graphiql/graphiql.css';
import './playground.css';

const TOKEN_KEY = 'cloudbase.accessToken';
const HTTP_URL = window.location.origin + '/graphql';
const WS_URL =
  (window.location.protocol === 'https:' ? 'wss://' : 'ws://') +
  window.location.host +
  '/graphql/ws';

// The page's Content-Security-Policy admits inline styles only with the nonce
// the server wrote into <meta name="csp-nonce">. GraphiQL's dialogs (through
// react-remove-scroll) add one <style> element, and take the nonce from
// `__webpack_nonce__` (the get-nonce convention), so set it before anything
// renders.
const nonceMeta = document.querySelector('meta[name="csp-nonce"]');
const styleNonce = nonceMeta ? nonceMeta.getAttribute('content') : '';
if (styleNonce && styleNonce !== '__CSP_NONCE__') {
  window.__webpack_nonce__ = styleNonce;
}

// ---------------------------------------------------------------------------
// Access token storage. `currentToken` is the single source of truth read by
// both the HTTP fetch wrapper and the websocket connectionParams function, so
// whatever is saved is what the next request / (re)connection uses.
//
// The token is kept in sessionStorage: it belongs to this tab, survives a
// reload, and is gone when the tab closes. It is never written anywhere that
// outlives the tab.
// ---------------------------------------------------------------------------

function tokenStorage() {
  try {
    return window.sessionStorage;
  } catch (_) {
    return null;
  }
}

function loadToken() {
  try {
    const storage = tokenStorage();
    return (storage && storage.getItem(TOKEN_KEY)) || '';
  } catch (_) {
    return '';
  }
}

let currentToken = loadToken();

function storeToken(token) {
  currentToken = token;
  try {
    const storage = tokenStorage();
    if (!storage) {
      return;
    }
    if (token) {
      storage.setItem(TOKEN_KEY, token);
    } else {
      storage.removeItem(TOKEN_KEY);
    }
  } catch (_) {
    // Storage may be unavailable; keep the in-memory token.
  }
}

function authHeaderValue() {
  return currentToken ? 'Bearer ' + currentToken : null;
}

// fetch wrapper: adds `Authorization: Bearer <token>` unless the user set an
// Authorization header explicitly in GraphiQL's "Headers" editor.
function authFetch(input, init = {}) {
  const headers = new Headers(init.headers || {});
  const auth = authHeaderValue();
  if (auth && !headers.has('authorization')) {
    headers.set('Authorization', auth);
  }
  return window.fetch(input, { ...init, headers });
}

function createWsClient() {
  return createClient({
    url: WS_URL,
    lazy: true,
    // A function, so every (re)connection sends the token current at that time.
    connectionParams: () => {
      const auth = authHeaderValue();
      return auth ? { Authorization: auth } : {};
    },
    retryAttempts: 3,
  });
}

const DEFAULT_QUERY = `# Welcome to the CloudBase AI GraphQL playground.
#
# 1. Run the Login mutation below (adjust email/password).
# 2. Paste \`accessToken\` from the result into the
#    "Access token" bar above and press Save. It is then
#    sent as "Authorization: Bearer <token>" on HTTP
#    requests and in the websocket connection_init
#    payload for subscriptions (/graphql/ws). It is kept
#    for this tab only, until the tab closes.
# 3. Try an authenticated query, for example:
#
#      query Me { me { id email displayName role } }
#
# Docs (top left) browses the schema.
# Ctrl-Enter runs, Shift-Ctrl-P prettifies.

mutation Login {
  login(input: { email: "admin@example.com", password: "change-me-please" }) {
    accessToken
    refreshToken
    user { id email role }
  }
}
`;

// ---------------------------------------------------------------------------
// UI
// ---------------------------------------------------------------------------

function TokenBar({ onSave, onClear, hasToken }) {
  const [value, setValue] = useState(currentToken);
  const [status, setStatus] = useState(hasToken ? 'Token loaded' : 'No token');

  const save = useCallback(() => {
    const token = value.trim();
    setValue(token);
    onSave(token);
    setStatus(token ? 'Token saved' : 'No token');
  }, [value, onSave]);

  const clear = useCallback(() => {
    setValue('');
    onClear();
    setStatus('Token cleared');
  }, [onClear]);

  return (
    <form
      className="cb-bar"
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      <span className="cb-brand">CloudBase AI</span>
      <label className="cb-label" htmlFor="cb-token">
        Access token
      </label>
      <input
        id="cb-token"
        className="cb-input"
        type="password"
        autoComplete="off"
        spellCheck={false}
        placeholder="paste accessToken"
        value={value}
        onChange={(e) => setValue(e.target.value)}
      />
      <button type="submit" className="cb-button">
        Save
      </button>
      <button type="button" className="cb-button" onClick={clear}>
        Clear
      </button>
      <span className={'cb-status' + (hasToken ? ' cb-status-on' : '')}>{status}</span>
      <span className="cb-hint">
        Run the <code>login</code> mutation, then paste <code>accessToken</code> here.
      </span>
    </form>
  );
}

function App() {
  // `generation` bumps on Save/Clear: a new ws client (and fetcher) is made,
  // the old ws client is disposed, and GraphiQL re-runs introspection.
  const [generation, setGeneration] = useState(0);
  const [hasToken, setHasToken] = useState(Boolean(currentToken));
  const wsRef = useRef(null);

  const fetcher = useMemo(() => {
    if (wsRef.current) {
      wsRef.current.dispose();
    }
    const wsClient = createWsClient();
    wsRef.current = wsClient;
    return createGraphiQLFetcher({
      url: HTTP_URL,
      wsClient,
      fetch: authFetch,
      // Plain JSON POSTs only (no multipart/mixed incremental delivery).
      enableIncrementalDelivery: false,
    });
  }, [generation]);

  useEffect(
    () => () => {
      if (wsRef.current) {
        wsRef.current.dispose();
        wsRef.current = null;
      }
    },
    [],
  );

  const onSave = useCallback((token) => {
    storeToken(token);
    setHasToken(Boolean(token));
    setGeneration((g) => g + 1);
  }, []);

  const onClear = useCallback(() => {
    storeToken('');
    setHasToken(false);
    setGeneration((g) => g + 1);
  }, []);

  return (
    <div className="cb-app">
      <TokenBar onSave={onSave} onClear={onClear} hasToken={hasToken} />
      <div className="cb-graphiql">
        <GraphiQL fetcher={fetcher} defaultQuery={DEFAULT_QUERY} />
      </div>
    </div>
  );
}

createRoot(document.getElementById('root')).render(<App />);
