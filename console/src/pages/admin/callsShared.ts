/** Types, the filter keys and the user-name lookup shared by the AI calls explorer and its panels. */
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

export function statusTone(status: Status): 'ok' | 'warn' | 'bad' | 'info' | 'muted' {
  if (status === 'SUCCEEDED') return 'ok';
  if (status === 'FAILED') return 'bad';
  if (status === 'PENDING') return 'info';
  return 'muted';
}

export const FILTER_KEYS = ['user', 'provider', 'model', 'status', 'from', 'to'] as const;
export type Filters = Record<(typeof FILTER_KEYS)[number], string>;
