/**
 * What the overview and the cost dashboard share: days in the server's calendar, a debounced
 * callback, people's names for user ids, and money summed per currency.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { request } from '../../api/client';
import { gql } from '../../api/gql';
import { sumMicros } from '../../ui/format';

export { addDays, daySpan, monthStart, parseDay, today } from '../../api/calendar';

/** A callback that runs `run` once, `delay` ms after the last call to it. */
export function useDebounced(run: () => void, delay: number): () => void {
  const latest = useRef(run);
  latest.current = run;
  const timer = useRef<number>();
  useEffect(() => () => window.clearTimeout(timer.current), []);
  return useCallback(() => {
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => latest.current(), delay);
  }, [delay]);
}

export interface Person {
  email: string;
  displayName: string;
}

const PERSON = gql`
  query CostsPerson($id: ID!) {
    user(id: $id) {
      id
      email
      displayName
    }
  }
`;

const people = new Map<string, Person | null>();
const asked = new Set<string>();

/** Names for user ids (looked up once each, kept for the page's life). */
export function usePeople(ids: (string | null | undefined)[]): Map<string, Person | null> {
  const [, setTick] = useState(0);
  const key = [...new Set(ids.filter((id): id is string => !!id))].sort().join(',');
  useEffect(() => {
    let live = true;
    for (const id of key ? key.split(',') : []) {
      if (asked.has(id)) continue;
      asked.add(id);
      request<{ user: Person & { id: string } }>(PERSON, { id })
        .then((data) => people.set(id, { email: data.user.email, displayName: data.user.displayName }))
        .catch(() => {
          people.set(id, null);
          asked.delete(id);
        })
        .finally(() => live && setTick((t) => t + 1));
    }
    return () => {
      live = false;
    };
  }, [key]);
  return people;
}

/** The people map's name for an id: display name and email, or the id itself. */
export function personLabel(map: Map<string, Person | null>, id: string | null | undefined): string {
  if (!id) return '—';
  const p = map.get(id);
  return p ? `${p.displayName} <${p.email}>` : id;
}

/** Sums `costMicros` per currency (never across currencies); unpriced rows have no currency. */
export function totalsByCurrency<T extends { currency?: string | null; costMicros: string }>(rows: T[]): [string, bigint][] {
  const groups = new Map<string, string[]>();
  for (const row of rows) {
    const c = row.currency ?? '';
    if (!groups.has(c)) groups.set(c, []);
    groups.get(c)!.push(row.costMicros);
  }
  return [...groups.entries()]
    .map(([c, v]) => [c, sumMicros(v)] as [string, bigint])
    .sort((a, b) => a[0].localeCompare(b[0]));
}
