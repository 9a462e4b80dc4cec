/**
 * Hash routing (`/console#/costs?from=2026-11-01`): the server serves one page at `/console`, and
 * a reload or a shared link lands on the same view. Query parameters keep a page's filters.
 */
import { useEffect, useState } from 'react';

export interface Route {
  /** The path segments: `#/calls/abc` is `['calls', 'abc']`. */
  path: string[];
  params: URLSearchParams;
  /** The address's hash it was read from. */
  hash: string;
}

function parse(): Route {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?', 2);
  return { path: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query), hash: location.hash };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    // The same address read twice (`navigate` announces a change at once, and the browser's own
    // `hashchange` follows) is one route: no second render.
    const on = () => setRoute((prev) => (prev.hash === location.hash ? prev : parse()));
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
  // At once, inside the event that navigated: the browser's own `hashchange` comes a task later,
  // and until then a control that shows the address (a checkbox bound to `?all=1`) would render
  // its old state.
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

export function href(path: string, params?: Record<string, string | undefined | null>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) if (value) query.set(key, value);
  const text = query.toString();
  return `#${path}${text ? `?${text}` : ''}`;
}
