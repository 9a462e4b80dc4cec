/**
 * Hash routing (`/console#/costs?from=2026-11-01`): the server serves one page at `/console`, and
 * a reload or a shared link lands on the same view. Query parameters keep a page's filters.
 */
import { useEffect, useState } from 'react';

export interface Route {
  /** The path segments: `#/calls/abc` is `['calls', 'abc']`. */
  path: string[];
  params: URLSearchParams;
}

function parse(): Route {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?', 2);
  return { path: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = () => setRoute(parse());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

/** Goes to a view; `params` become its query string (empty values dropped). */
export function navigate(path: string, params?: Record<string, string | undefined | null>, replace = false) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) if (value) query.set(key, value);
  const text = query.toString();
  const hash = `#${path}${text ? `?${text}` : ''}`;
  if (replace) history.replaceState(null, '', hash);
  else if (location.hash !== hash) location.hash = hash;
  if (replace) window.dispatchEvent(new HashChangeEvent('hashchange'));
}

export function href(path: string, params?: Record<string, string | undefined | null>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) if (value) query.set(key, value);
  const text = query.toString();
  return `#${path}${text ? `?${text}` : ''}`;
}
