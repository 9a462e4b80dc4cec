/** React hooks over the API: `useQuery` (load, reload, keep the last data while reloading) and
 * `useSubscription` (live results while mounted). */
import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, request, subscribe, toApiError } from './client';

export interface QueryState<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload(): void;
}

/** Runs `document` now and whenever `variables` change (compared as JSON); `skip` holds it. */
export function useQuery<T>(document: string, variables?: object, skip = false): QueryState<T> {
  const key = JSON.stringify(variables ?? {});
  const [state, setState] = useState<{ data?: T; error?: ApiError; loading: boolean }>({ loading: !skip });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (skip) return undefined;
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    request<T>(document, JSON.parse(key))
      .then((data) => live && setState({ data, loading: false }))
      .catch((error: unknown) =>
        live &&
        setState((s) => ({
          data: s.data,
          error: toApiError(error),
          loading: false,
        })),
      );
    return () => {
      live = false;
    };
  }, [document, key, tick, skip]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/**
 * Subscribes while mounted (and while `enabled`); `onData` always sees the latest closure.
 * Returns whether the subscription is live, and its last error.
 */
export function useSubscription<T>(
  document: string,
  variables: object | undefined,
  onData: (data: T) => void,
  enabled = true,
): { error: ApiError | undefined } {
  const handler = useRef(onData);
  handler.current = onData;
  const [error, setError] = useState<ApiError>();
  const key = JSON.stringify(variables ?? {});
  useEffect(() => {
    if (!enabled) return undefined;
    setError(undefined);
    const sub = subscribe<T>(document, JSON.parse(key), (data) => handler.current(data), setError);
    return () => sub.stop();
  }, [document, key, enabled]);
  return { error };
}
