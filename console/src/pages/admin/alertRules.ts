/** Alert rules as the alerting page sees them: the kinds, the settings each kind takes, and the rule row. */

export const KINDS = ['BUDGET_THRESHOLD', 'ERROR_RATE', 'PROVIDER_FAILING', 'LATENCY_P95', 'PLUGIN_FAILED'] as const;
export type Kind = (typeof KINDS)[number];
export type ParamKey = 'thresholdPercent' | 'windowSecs' | 'minCalls' | 'consecutiveFailures' | 'latencyMs' | 'provider' | 'model' | 'budgetId' | 'plugin';
export const NUMERIC: ParamKey[] = ['thresholdPercent', 'windowSecs', 'minCalls', 'consecutiveFailures', 'latencyMs'];

/** The settings that apply to each kind. */
export const PARAMS: Record<Kind, ParamKey[]> = {
  BUDGET_THRESHOLD: ['thresholdPercent', 'budgetId'],
  ERROR_RATE: ['thresholdPercent', 'windowSecs', 'minCalls', 'provider', 'model'],
  PROVIDER_FAILING: ['consecutiveFailures', 'provider'],
  LATENCY_P95: ['latencyMs', 'windowSecs', 'minCalls', 'provider', 'model'],
  PLUGIN_FAILED: ['plugin'],
};

export type Params = Partial<Record<ParamKey, string | number | null>>;

export interface Rule {
  id: string;
  name: string;
  kind: Kind;
  params: Params;
  targets: { channel: string; to: string | null }[];
  cooldownSecs: number;
  enabled: boolean;
  ownerId: string | null;
  lastFiredAt: string | null;
}
