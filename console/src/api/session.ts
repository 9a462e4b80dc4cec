/**
 * The signed-in session: tokens kept in localStorage (shared by the tabs of this origin), the
 * access token refreshed silently before it expires, and logout.
 *
 * Refresh tokens are single-use and a reused one ends the whole session, so two tabs must never
 * spend the same one: a refresh runs under a Web Lock, and re-reads the store inside it (another
 * tab may have refreshed already).
 */
import { gql } from './gql';

export type Role = 'USER' | 'ADMIN';

export interface SessionUser {
  id: string;
  email: string;
  displayName: string;
  role: Role;
}

export interface Session {
  accessToken: string;
  accessTokenExpiresAt: string;
  refreshToken: string;
  refreshTokenExpiresAt: string;
  user: SessionUser;
}

const KEY = 'cloudbase.console.session';
/** Refresh this long before the access token expires. */
const EARLY_MS = 60_000;

type Listener = (session: Session | null, why?: string) => void;
const listeners = new Set<Listener>();
let timer: number | undefined;

export function current(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const session = JSON.parse(raw) as Session;
    if (Date.parse(session.refreshTokenExpiresAt) <= Date.now()) return null;
    return session;
  } catch {
    return null;
  }
}

export function onChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function emit(session: Session | null, why?: string) {
  for (const listener of listeners) listener(session, why);
}

/** Stores a new session (from login, register or refresh) and plans its refresh. */
export function store(session: Session) {
  localStorage.setItem(KEY, JSON.stringify(session));
  schedule(session);
  emit(session);
}

/** Forgets the session locally (the server side is ended by `logout` first, when possible). */
export function clear(why?: string) {
  localStorage.removeItem(KEY);
  window.clearTimeout(timer);
  timer = undefined;
  emit(null, why);
}

function schedule(session: Session) {
  window.clearTimeout(timer);
  const due = Date.parse(session.accessTokenExpiresAt) - EARLY_MS - Date.now();
  timer = window.setTimeout(() => void refresh().catch(() => undefined), Math.max(due, 1_000));
}

const REFRESH = gql`
  mutation ConsoleRefresh($refreshToken: String!) {
    refreshSession(refreshToken: $refreshToken) {
      accessToken
      accessTokenExpiresAt
      refreshToken
      refreshTokenExpiresAt
      user { id email displayName role }
    }
  }
`;

async function withLock<T>(run: () => Promise<T>): Promise<T> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  return locks ? locks.request('cloudbase.console.refresh', run) : run();
}

let inFlight: Promise<Session | null> | null = null;

/**
 * Trades the refresh token for new tokens. Returns the new session, or null (and clears it) when
 * the server refuses: the session was ended, the user disabled, or the token reused.
 */
export function refresh(): Promise<Session | null> {
  if (inFlight) return inFlight;
  const before = current();
  inFlight = withLock(async () => {
    const now = current();
    if (!now) return null;
    // Another tab refreshed while this one waited for the lock: take its tokens.
    if (before && now.refreshToken !== before.refreshToken) {
      schedule(now);
      emit(now);
      return now;
    }
    const response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({
        query: REFRESH,
        operationName: 'ConsoleRefresh',
        variables: { refreshToken: now.refreshToken },
      }),
    });
    const body = (await response.json()) as { data?: { refreshSession: Session }; errors?: unknown[] };
    if (body.data?.refreshSession) {
      store(body.data.refreshSession);
      return body.data.refreshSession;
    }
    clear('expired');
    return null;
  }).finally(() => {
    inFlight = null;
  });
  return inFlight;
}

/** On load: plan the refresh of a stored session, or refresh now if its access token is stale. */
export function resume() {
  const session = current();
  if (!session) return;
  if (Date.parse(session.accessTokenExpiresAt) - EARLY_MS <= Date.now()) void refresh().catch(() => undefined);
  else schedule(session);
  // Another tab logged in, refreshed or logged out.
  window.addEventListener('storage', (event) => {
    if (event.key !== KEY) return;
    const next = current();
    if (next) {
      schedule(next);
      emit(next);
    } else {
      window.clearTimeout(timer);
      emit(null);
    }
  });
}
