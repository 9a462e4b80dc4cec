/** Types, the filter keys and the user-name and API-key lookups shared by the AI calls explorer and its panels. */
import { useEffect, useState } from 'react';
import { request } from '../../api/client';
import { gql } from '../../api/gql';

export type Status = 'PENDING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
export const STATUSES: Status[] = ['PENDING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];

export interface CallRow {
  id: string;
  userId: string;
  provider: string;
  model: string;
  status: Status;
  promptTokens: number;
  cachedPromptTokens: number;
  completionTokens: number;
  startedAt: string;
  latencyMs: number | null;
  costMicros: string;
  currency: string | null;
  /** The API key that made the call (null: a signed-in session). */
  apiKeyId: string | null;
}

export interface UserLite {
  id: string;
  email: string;
  displayName: string;
}

export const USER_ONE = gql`
  query CallsUser($id: ID!) {
    user(id: $id) { id email displayName }
  }
`;

/** Names of the users on the page, fetched once each and kept for the session. */
const userCache = new Map<string, Promise<UserLite | null>>();
function loadUser(id: string): Promise<UserLite | null> {
  let hit = userCache.get(id);
  if (!hit) {
    hit = request<{ user: UserLite }>(USER_ONE, { id })
      .then((d) => d.user)
      .catch(() => {
        userCache.delete(id);
        return null;
      });
    userCache.set(id, hit);
  }
  return hit;
}
export function useUsers(ids: string[]): Record<string, UserLite> {
  const [known, setKnown] = useState<Record<string, UserLite>>({});
  const key = [...new Set(ids)].sort().join(',');
  useEffect(() => {
    let live = true;
    const wanted = key ? key.split(',') : [];
    void Promise.all(wanted.map(loadUser)).then((users) => {
      if (!live) return;
      const next: Record<string, UserLite> = {};
      for (const u of users) if (u) next[u.id] = u;
      setKnown(next);
    });
    return () => {
      live = false;
    };
  }, [key]);
  return known;
}

export interface KeyLite {
  id: string;
  userId: string;
  name: string;
  prefix: string;
}

const USER_KEYS = gql`
  query CallsUserKeys($userId: ID) {
    apiKeys(userId: $userId) { id userId name prefix }
  }
`;

/** Each user's keys, fetched once (and again when a call names a key made since). */
const keyCache = new Map<string, Promise<KeyLite[]>>();
const refetched = new Set<string>();
function loadKeys(userId: string): Promise<KeyLite[]> {
  let hit = keyCache.get(userId);
  if (!hit) {
    hit = request<{ apiKeys: KeyLite[] }>(USER_KEYS, { userId })
      .then((d) => d.apiKeys)
      .catch(() => {
        keyCache.delete(userId);
        return [];
      });
    keyCache.set(userId, hit);
  }
  return hit;
}
async function findKey(userId: string, keyId: string): Promise<KeyLite | null> {
  let found = (await loadKeys(userId)).find((k) => k.id === keyId);
  if (!found && !refetched.has(keyId)) {
    refetched.add(keyId);
    keyCache.delete(userId);
    found = (await loadKeys(userId)).find((k) => k.id === keyId);
  }
  return found ?? null;
}

/** The API keys (name and prefix) that made the given calls, by key id. */
export function useKeys(calls: { userId: string; apiKeyId: string | null }[]): Record<string, KeyLite> {
  const [known, setKnown] = useState<Record<string, KeyLite>>({});
  const pairs = [...new Set(calls.filter((c) => c.apiKeyId).map((c) => `${c.userId} ${c.apiKeyId}`))].sort();
  const key = pairs.join(',');
  useEffect(() => {
    let live = true;
    const wanted = key ? key.split(',').map((p) => p.split(' ')) : [];
    void Promise.all(wanted.map(([userId, keyId]) => findKey(userId, keyId))).then((keys) => {
      if (!live) return;
      const next: Record<string, KeyLite> = {};
      for (const k of keys) if (k) next[k.id] = k;
      setKnown(next);
    });
    return () => {
      live = false;
    };
  }, [key]);
  return known;
}

export function statusTone(status: Status): 'ok' | 'warn' | 'bad' | 'info' | 'muted' {
  if (status === 'SUCCEEDED') return 'ok';
  if (status === 'FAILED') return 'bad';
  if (status === 'PENDING') return 'info';
  return 'muted';
}

export const FILTER_KEYS = ['user', 'key', 'provider', 'model', 'status', 'from', 'to'] as const;
export type Filters = Record<(typeof FILTER_KEYS)[number], string>;
