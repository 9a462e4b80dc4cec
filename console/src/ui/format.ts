/**
 * Formatting for people: money (exact, from integer micro-units), token counts, durations and
 * times, in the language in force.
 */

/** Micro-units (a decimal integer string, as the API sends `Micros`) as an exact decimal string. */
export function microsToDecimal(micros: string | number | bigint): string {
  let value = BigInt(micros);
  const negative = value < 0n;
  if (negative) value = -value;
  const whole = value / 1_000_000n;
  const fraction = (value % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** For charts only (floating point is fine for a bar's height, never for a total). */
export function microsToNumber(micros: string | number | bigint): number {
  return Number(BigInt(micros)) / 1_000_000;
}

/** Sums micro-unit strings exactly. */
export function sumMicros(values: Iterable<string | number | bigint>): bigint {
  let total = 0n;
  for (const v of values) total += BigInt(v);
  return total;
}

/**
 * Money in its currency, exact to the micro-unit: at least 2 decimals, at most 6, with the
 * currency's symbol (¥ for CNY in both languages; the locale's own symbol for the others, such
 * as US$ in Chinese and $ in English).
 */
export function money(micros: string | number | bigint, currency: string | null | undefined, locale: string): string {
  const decimal = microsToDecimal(micros);
  const options: Intl.NumberFormatOptions = { minimumFractionDigits: 2, maximumFractionDigits: 6 };
  if (currency && /^[A-Z]{3}$/.test(currency)) {
    options.style = 'currency';
    options.currency = currency;
    options.currencyDisplay = currency === 'CNY' ? 'narrowSymbol' : 'symbol';
  }
  // Intl formats a decimal string exactly (no float on the way).
  const format = new Intl.NumberFormat(locale, options).format as unknown as (value: string) => string;
  return format(decimal);
}

/** A decimal amount typed by a person (`"4.00"`) as micro-units, or null if it is not one. */
export function decimalToMicros(text: string): string | null {
  const match = /^\s*(\d{1,12})(?:\.(\d{1,6}))?\s*$/.exec(text);
  if (!match) return null;
  return (BigInt(match[1]) * 1_000_000n + BigInt((match[2] ?? '').padEnd(6, '0'))).toString();
}

export function count(value: number | null | undefined, locale: string): string {
  return value == null ? '—' : new Intl.NumberFormat(locale).format(value);
}

export function percent(fraction: number | null | undefined, locale: string): string {
  return fraction == null
    ? '—'
    : new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 1 }).format(fraction);
}

export function ms(value: number | null | undefined, locale: string): string {
  return value == null ? '—' : `${new Intl.NumberFormat(locale).format(value)} ms`;
}

/** The zone times are shown in: the server's (`reportCalendar`), once known. */
let displayZone: string | undefined;

export function setDisplayZone(zone: string) {
  displayZone = zone;
}

function inZone(locale: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  try {
    return new Intl.DateTimeFormat(locale, { ...options, timeZone: displayZone });
  } catch {
    return new Intl.DateTimeFormat(locale, options);
  }
}

/** A moment, in the server's time zone (the one its days and budgets are counted in). */
export function dateTime(iso: string | null | undefined, locale: string): string {
  if (!iso) return '—';
  return inZone(locale, { dateStyle: 'medium', timeStyle: 'medium' }).format(new Date(iso));
}

/** A compact moment for tables (month, day and time), in the server's time zone. */
export function shortDateTime(iso: string, locale: string): string {
  return inZone(locale, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(
    new Date(iso),
  );
}

export function time(iso: string | null | undefined, locale: string): string {
  if (!iso) return '—';
  return inZone(locale, { timeStyle: 'medium' }).format(new Date(iso));
}

/** `YYYY-MM-DD` of a local date. */
export function isoDay(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** `YYYY-MM` of a local date. */
export function isoMonth(date: Date): string {
  return isoDay(date).slice(0, 7);
}

/** A `datetime-local` input's value as RFC 3339 (UTC), or undefined when empty. */
export function localInputToIso(value: string): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/**
 * Spent and reserved as percentages of a limit, for a meter: exact per-mille from the micro-units
 * (only the result is a float), reserved capped to what spent leaves; both 0 without a limit.
 */
export function limitShares(
  limitMicros: string,
  spentMicros: string,
  reservedMicros: string,
): { spent: number; reserved: number } {
  const limit = BigInt(limitMicros);
  if (limit <= 0n) return { spent: 0, reserved: 0 };
  const perMille = (v: string) => Math.min(1000, Number((BigInt(v) * 1000n) / limit));
  const spent = perMille(spentMicros);
  const reserved = Math.min(1000 - spent, perMille(reservedMicros));
  return { spent: spent / 10, reserved: reserved / 10 };
}
