/**
 * The server's calendar: reports, statements and budget periods count days in one configured
 * time zone (`reportCalendar`), which may not be the browser's. Pages take "today" and "this
 * month" from here, so a preset asks for the days the server means.
 */
import { isoDay, setDisplayZone } from '../ui/format';

let zone: string | undefined;

export function setServerZone(timeZone: string) {
  zone = timeZone;
  setDisplayZone(timeZone);
}

/** The zone the server counts days in (undefined until known). */
export function serverZone(): string | undefined {
  return zone;
}

/** Today, `YYYY-MM-DD`, in the server's zone (the browser's until it is known). */
export function serverToday(): string {
  return serverDayOf(new Date());
}

/** The day of a moment, `YYYY-MM-DD`, in the server's zone (the browser's until it is known). */
export function serverDayOf(moment: Date): string {
  if (!zone) return isoDay(moment);
  try {
    const parts = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
    }).formatToParts(moment);
    const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
    return `${part('year')}-${part('month')}-${part('day')}`;
  } catch {
    return isoDay(moment);
  }
}

/** How far the server's zone is ahead of UTC at a moment, in milliseconds. */
function zoneOffset(at: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(at));
  const part = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const wall = Date.UTC(part('year'), part('month') - 1, part('day'), part('hour'), part('minute'), part('second'));
  return wall - Math.floor(at / 1000) * 1000;
}

/** The moment a day starts in the server's zone, as RFC 3339 (UTC); undefined for a bad day. */
export function serverDayStart(day: string): string | undefined {
  const local = parseDay(day);
  if (!local) return undefined;
  if (!zone) return local.toISOString();
  try {
    const wall = Date.UTC(local.getFullYear(), local.getMonth(), local.getDate());
    // Twice: the offset at the guess may differ from the one at the answer (a DST change).
    let at = wall - zoneOffset(wall, zone);
    at = wall - zoneOffset(at, zone);
    return new Date(at).toISOString();
  } catch {
    return local.toISOString();
  }
}

/** This month, `YYYY-MM`, in the server's zone. */
export function serverMonth(): string {
  return serverToday().slice(0, 7);
}

/** `YYYY-MM-DD` → a local Date at midnight. */
export function parseDay(day: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) return null;
  const date = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return isoDay(date) === day ? date : null;
}

export function addDays(day: string, n: number): string {
  const date = parseDay(day) ?? new Date();
  date.setDate(date.getDate() + n);
  return isoDay(date);
}

/** Days from `from` to `to`, both included (0 when `to` is before `from`). */
export function daySpan(from: string, to: string): number {
  const a = parseDay(from);
  const b = parseDay(to);
  if (!a || !b) return 0;
  return Math.round((b.getTime() - a.getTime()) / 86_400_000) + 1;
}

/** Today in the server's calendar. */
export function today(): string {
  return serverToday();
}

export function monthStart(day: string): string {
  return `${day.slice(0, 7)}-01`;
}

