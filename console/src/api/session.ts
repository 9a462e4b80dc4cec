/**
 * The signed-in session: the access token refreshed silently before it expires, kept in step
 * across the tabs of this origin, and logout.
 *
 * Refresh tokens are single-use, and a reused one ends the whole session, so two tabs must never
 * spend the same one. localStorage cannot promise that (a tab may read it before another tab's
 * write arrives), so one tab leads: the one holding the `leader` Web Lock is the only one that
 * spends refresh tokens, from its own copy of the session. Other tabs ask it over a
 * BroadcastChannel and take the tokens it broadcasts. When the leading tab closes, another takes
 * the lock. localStorage only carries the session across reloads.
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

type Message =
  | { type: 'session'; session: Session }
  | { type: 'cleared'; why?: string }
  | { type: 'refresh' };

const KEY = 'cloudbase.console.session';
/** Refresh a minute before the access token expires, or at 3/4 of a shorter life. */
const EARLY_MS = 60_000;
/** How long a tab waits for the leading tab to answer before refreshing itself. */
const ASK_TIMEOUT_MS = 10_000;

type Listener = (session: Session | null, why?: string) => void;
const listeners = new Set<Listener>();
let timer: number | undefined;
let leader = false;
let memory: Session | null = load();
const channel: BroadcastChannel | null = typeof BroadcastChannel === 'function' ? new BroadcastChannel(KEY) : null;

function load(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const session = JSON.parse(raw) as Session;
    return Date.parse(session.refreshTokenExpiresAt) > Date.now() ? session : null;
  } catch {
    return null;
  }
}

export function current(): Session | null {
  return memory;
}

export function onChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Takes a session as this tab's own (and plans its refresh, when leading). */
function adopt(session: Session | null, why?: string) {
  memory = session;
  window.clearTimeout(timer);
  timer = undefined;
  if (session && leader) schedule(session);
  for (const listener of listeners) listener(session, why);
}

/** Stores a new session (from login, register or refresh) and gives it to the other tabs. */
export function store(session: Session) {
  localStorage.setItem(KEY, JSON.stringify(session));
  adopt(session);
  channel?.postMessage({ type: 'session', session } satisfies Message);
}

/** Forgets the session here and in the other tabs (the server side is ended by `logout` first). */
export function clear(why?: string) {
  localStorage.removeItem(KEY);
  adopt(null, why);
  channel?.postMessage({ type: 'cleared', why } satisfies Message);
}

function refreshDue(session: Session): number {
  const left = Date.parse(session.accessTokenExpiresAt) - Date.now();
  return left - Math.min(EARLY_MS, Math.max(left / 4, 500));
}

function schedule(session: Session) {
  window.clearTimeout(timer);
  timer = window.setTimeout(() => void refresh().catch(retryLater), Math.max(refreshDue(session), 0));
}

/** A refresh that could not reach the server (or found it busy): try again in 5 s. */
function retryLater() {
  window.clearTimeout(timer);
  timer = window.setTimeout(() => void refresh().catch(retryLater), 5_000);
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

let inFlight: Promise<Session | null> | null = null;

/** Spends this tab's refresh token (only the leading tab, or a tab with no leader, does). */
function spend(): Promise<Session | null> {
  if (inFlight) return inFlight;
  inFlight = (async () => {
    const now = memory;
    if (!now) return null;
    const response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({
        query: REFRESH,
        operationName: 'ConsoleRefresh',
        variables: { refreshToken: now.refreshToken },
      }),
    });
    const body = (await response.json()) as {
      data?: { refreshSession: Session };
      errors?: { extensions?: { code?: string } }[];
    };
    if (body.data?.refreshSession) {
      store(body.data.refreshSession);
      return body.data.refreshSession;
    }
    // Refused (ended, disabled, reused): the session is over. Anything else (the server busy or
    // restarting) is tried again shortly.
    if (body.errors?.[0]?.extensions?.code === 'UNAUTHENTICATED') {
      clear('expired');
      return null;
    }
    throw new Error(`refresh failed: ${response.status}`);
  })().finally(() => {
    inFlight = null;
  });
  return inFlight;
}

/** Asks the leading tab for fresh tokens; spends this tab's own if no answer comes in time. */
function ask(): Promise<Session | null> {
  const before = memory?.accessToken;
  return new Promise((resolve, reject) => {
    const off = onChange((session) => {
      if (session?.accessToken === before) return;
      window.clearTimeout(wait);
      off();
      resolve(session);
    });
    const wait = window.setTimeout(() => {
      off();
      spend().then(resolve, reject);
    }, ASK_TIMEOUT_MS);
    channel?.postMessage({ type: 'refresh' } satisfies Message);
  });
}

/**
 * New tokens for this tab. Returns the new session, or null (and the session is cleared) when
 * the server refuses: the session was ended, the user disabled, or the token reused.
 */
export function refresh(): Promise<Session | null> {
  return leader || !channel ? spend() : ask();
}

/** On load: follow the other tabs, and lead when this tab gets the lock. */
export function resume() {
  channel?.addEventListener('message', (event: MessageEvent<Message>) => {
    const message = event.data;
    if (message.type === 'session') adopt(message.session);
    else if (message.type === 'cleared') adopt(null, message.why);
    else if (message.type === 'refresh' && leader) void spend().catch(() => undefined);
  });
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  const lead = () => {
    leader = true;
    // The freshest copy: the tab that led before may have refreshed just as it closed.
    const stored = load();
    if (stored && (!memory || Date.parse(stored.accessTokenExpiresAt) > Date.parse(memory.accessTokenExpiresAt)))
      memory = stored;
    if (memory) {
      if (refreshDue(memory) <= 0) void spend().catch(retryLater);
      else schedule(memory);
    }
  };
  if (locks && channel) void locks.request(`${KEY}.leader`, () => {
    lead();
    // Held for the tab's life.
    return new Promise<never>(() => undefined);
  });
  else lead();
}

/** Told when the account settled a step it owed (a new password, two-step sign-in), so views that
 * stopped for it can look again. */
export const ACCOUNT_CHANGED = 'cloudbase:account-changed';

export function accountChanged() {
  window.dispatchEvent(new Event(ACCOUNT_CHANGED));
}
