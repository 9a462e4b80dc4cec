/**
 * The server's calendar: reports, statements and budget periods count days in one configured
 * time zone (`reportCalendar`), which may not be the browser's. Pages take "today" and "this
 * month" from here, so a preset asks for the days the server means.
 */
import { gql } from './gql';
import { isoDay } from '../ui/format';

export const REPORT_CALENDAR = gql`
  query ConsoleReportCalendar {
    reportCalendar { timeZone }
  }
`;

let zone: string | undefined;

export function setServerZone(timeZone: string) {
  zone = timeZone;
}

/** The zone the server counts days in (undefined until known). */
export function serverZone(): string | undefined {
  return zone;
}

/** Today, `YYYY-MM-DD`, in the server's zone (the browser's until it is known). */
export function serverToday(): string {
  if (!zone) return isoDay(new Date());
  try {
    const parts = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
    }).formatToParts(new Date());
    const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
    return `${part('year')}-${part('month')}-${part('day')}`;
  } catch {
    return isoDay(new Date());
  }
}

/** This month, `YYYY-MM`, in the server's zone. */
export function serverMonth(): string {
  return serverToday().slice(0, 7);
}
