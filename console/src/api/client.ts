/**
 * Talks to the public GraphQL API: `request` over HTTP (GraphQL-over-HTTP, JSON), `subscribe`
 * over `/graphql/ws` (graphql-transport-ws). Both send the session's access token; a request
 * refused as `UNAUTHENTICATED` is retried once after a silent refresh, and a session the server
 * will not refresh is cleared (the app then shows the login page).
 */
import { createClient, type Client } from 'graphql-ws';
import { clear, current, refresh } from './session';

/** A GraphQL error, with the server's `extensions.code`. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Anything a request threw, as an `ApiError` (unexpected ones as `INTERNAL`). */
export function toApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError(String(error), 'INTERNAL');
}

interface GraphQLError {
  message: string;
  extensions?: { code?: string } & Record<string, unknown>;
}

function operationName(document: string): string | undefined {
  return /\b(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/.exec(document)?.[1];
}

async function post<T>(document: string, variables: object | undefined, token: string | undefined) {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json, application/json',
  };
  if (token) headers.authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers,
      body: JSON.stringify({ query: document, operationName: operationName(document), variables }),
    });
  } catch {
    throw new ApiError('The server cannot be reached.', 'NETWORK');
  }
  let body: { data?: T | null; errors?: GraphQLError[] };
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status}.`, 'NETWORK');
  }
  if (body.errors?.length) {
    const first = body.errors[0];
    throw new ApiError(first.message, first.extensions?.code ?? 'INTERNAL', first.extensions ?? {});
  }
  if (body.data == null) throw new ApiError(`The server answered ${response.status}.`, 'INTERNAL');
  return body.data;
}

/** Runs a query or mutation as the signed-in user (or anonymously, with no session). */
export async function request<T>(document: string, variables?: object): Promise<T> {
  const session = current();
  try {
    return await post<T>(document, variables, session?.accessToken);
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 'UNAUTHENTICATED' || !session) throw error;
    // The access token may have just expired: refresh once and try again.
    const renewed = await refresh().catch(() => null);
    if (!renewed) throw error;
    try {
      return await post<T>(document, variables, renewed.accessToken);
    } catch (again) {
      if (again instanceof ApiError && again.code === 'UNAUTHENTICATED') clear('refused');
      throw again;
    }
  }
}

let client: Client | null = null;
let clientToken: string | undefined;

function ws(): Client {
  const token = current()?.accessToken;
  if (client && clientToken === token) return client;
  // A new token: new subscriptions go over a socket opened with it (running ones keep theirs
  // until the server closes it when its token expires, and then resubscribe).
  const previous = client;
  clientToken = token;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql/ws`;
  client = createClient({
    url,
    lazy: true,
    lazyCloseTimeout: 1_000,
    retryAttempts: 8,
    connectionParams: () => (token ? { Authorization: `Bearer ${token}` } : {}),
  });
  if (previous) window.setTimeout(() => void previous.dispose(), 30_000);
  return client;
}

export interface Subscription {
  stop(): void;
}

/** The close codes after which a socket's credential must be renewed. */
const CREDENTIAL_CLOSED = new Set([4401, 4403]);

/**
 * Subscribes and calls `onData` for each result until `stop`. A socket closed because its
 * access token expired or its session was refused is reopened after a silent refresh; a
 * session that cannot be refreshed is cleared. `onError` hears every other error.
 */
export function subscribe<T>(
  document: string,
  variables: object | undefined,
  onData: (data: T) => void,
  onError?: (error: ApiError) => void,
  onComplete?: () => void,
): Subscription {
  let stopped = false;
  let unsubscribe: () => void = () => undefined;
  let attempt = 0;
  const start = () => {
    if (stopped) return;
    unsubscribe = ws().subscribe<T>(
      { query: document, operationName: operationName(document), variables: variables as Record<string, unknown> },
      {
        next: (result) => {
          attempt = 0;
          if (result.errors?.length) {
            const first = result.errors[0] as GraphQLError;
            onError?.(new ApiError(first.message, first.extensions?.code ?? 'INTERNAL', first.extensions ?? {}));
          } else if (result.data) onData(result.data as T);
        },
        error: (error: unknown) => {
          if (stopped) return;
          const code = (error as { code?: number })?.code;
          if (typeof code === 'number' && CREDENTIAL_CLOSED.has(code)) {
            attempt += 1;
            if (attempt > 3) {
              clear('refused');
              return;
            }
            void refresh()
              .then((session) => (session ? start() : clear('refused')))
              .catch(() => onError?.(new ApiError('The server cannot be reached.', 'NETWORK')));
            return;
          }
          if (Array.isArray(error)) {
            const first = error[0] as GraphQLError;
            onError?.(new ApiError(first.message, first.extensions?.code ?? 'INTERNAL', first.extensions ?? {}));
          } else onError?.(new ApiError('The live connection was lost.', 'NETWORK'));
        },
        complete: () => {
          if (!stopped) onComplete?.();
        },
      },
    );
  };
  start();
  return {
    stop() {
      stopped = true;
      unsubscribe();
    },
  };
}
