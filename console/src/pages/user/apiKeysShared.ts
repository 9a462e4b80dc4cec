/** Types, documents and small helpers shared by the API keys page and its panels. */
import { gql } from '../../api/gql';

export type Scope = 'CHAT' | 'FULL';
export type KeyState = 'ACTIVE' | 'ROTATING' | 'REVOKED' | 'EXPIRED';
export type Period = 'DAY' | 'WEEK' | 'MONTH' | 'TOTAL';
export const SCOPES: Scope[] = ['CHAT', 'FULL'];
export const PERIODS: Period[] = ['DAY', 'WEEK', 'MONTH', 'TOTAL'];
/** The grace periods a rotation offers, in seconds (the server allows up to 7 days). */
export const GRACES = [0, 3600, 86400, 604800] as const;
export type Grace = (typeof GRACES)[number];

export interface KeyBudget {
  id: string;
  period: Period;
  currency: string;
  limitMicros: string;
  spentMicros: string;
  reservedMicros: string;
  remainingMicros: string;
}

export interface ApiKey {
  id: string;
  userId: string;
  name: string;
  prefix: string;
  scope: Scope;
  allowedModels: string[] | null;
  state: KeyState;
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  lastUsedIp: string | null;
  familyId: string;
  budget: KeyBudget | null;
}

/** A key and its secret, just made (by create or rotate). */
export interface Created {
  secret: string;
  apiKey: ApiKey;
  /** For a rotation: the key it replaced. */
  replaced?: { id: string; prefix: string };
}

export const API_KEYS = gql`
  query ApiKeysList($all: Boolean!) {
    apiKeys(all: $all) {
      id userId name prefix scope allowedModels state requestsPerMinute tokensPerMinute
      createdAt expiresAt revokedAt lastUsedAt lastUsedIp familyId
      budget { id period currency limitMicros spentMicros reservedMicros remainingMicros }
    }
  }
`;

export const MODELS = gql`
  query ApiKeysModels {
    models { provider id displayName }
  }
`;

export interface ModelChoice {
  provider: string;
  id: string;
  displayName: string;
}

/** Whether a key still works (rotating ones do, until their grace ends). */
export function isLive(key: ApiKey): boolean {
  return key.state === 'ACTIVE' || key.state === 'ROTATING';
}

export function stateTone(state: KeyState): 'ok' | 'warn' | 'bad' | 'muted' {
  if (state === 'ACTIVE') return 'ok';
  if (state === 'ROTATING') return 'warn';
  if (state === 'REVOKED') return 'bad';
  return 'muted';
}

/** Working keys first (newest first within each group, as the server lists them). */
export function ordered(keys: ApiKey[]): ApiKey[] {
  return [...keys.filter(isLive), ...keys.filter((k) => !isLive(k))];
}

/** The address OpenAI SDKs take as their base URL. */
export function baseUrl(): string {
  return `${location.origin}/v1`;
}

/** A model to show in the examples: one the key may call, else any callable one. */
export function exampleModel(key: ApiKey, models: ModelChoice[]): string {
  if (key.allowedModels?.length) return key.allowedModels[0];
  const any = models.find((m) => m.provider && m.id);
  return any ? `${any.provider}/${any.id}` : 'provider/model';
}
