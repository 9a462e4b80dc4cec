/**
 * The create and edit dialog of the API keys page: name, scope, allowed models (none checked:
 * every model), expiry day, rate limits and a budget of its own. Editing sends only what changed
 * (a field left as it was is left out, so an expired key can be given a new expiry alone).
 */
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { request, type ApiError, toApiError } from '../../api/client';
import { addDays, serverDayOf, serverDayStart, serverToday, serverZone } from '../../api/calendar';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useText } from '../../i18n';
import { Dialog, ErrorBox, Field } from '../../ui/components';
import { decimalToMicros, microsToDecimal } from '../../ui/format';
import { text } from './ApiKeys.text';
import { MODELS, PERIODS, SCOPES, type ApiKey, type Created, type ModelChoice, type Period, type Scope } from './apiKeysShared';

const CREATE = gql`
  mutation ApiKeysCreate($input: CreateApiKeyInput!) {
    createApiKey(input: $input) {
      secret
      apiKey {
        id userId name prefix scope allowedModels state requestsPerMinute tokensPerMinute
        createdAt expiresAt revokedAt lastUsedAt lastUsedIp familyId
        budget { id period currency limitMicros spentMicros reservedMicros remainingMicros }
      }
    }
  }
`;

const UPDATE = gql`
  mutation ApiKeysUpdate($id: ID!, $input: UpdateApiKeyInput!) {
    updateApiKey(id: $id, input: $input) { id name }
  }
`;

interface Form {
  name: string;
  scope: Scope;
  models: string[];
  expires: string;
  rpm: string;
  tpm: string;
  budgetOn: boolean;
  period: Period;
  currency: string;
  limit: string;
}

function formOf(key: ApiKey | null): Form {
  return {
    name: key?.name ?? '',
    scope: key?.scope ?? 'CHAT',
    models: key?.allowedModels ?? [],
    // The day it stops working at the end of (a key made here expires at the next midnight).
    expires: key?.expiresAt ? serverDayOf(new Date(Date.parse(key.expiresAt) - 1)) : '',
    rpm: key?.requestsPerMinute != null ? String(key.requestsPerMinute) : '',
    tpm: key?.tokensPerMinute != null ? String(key.tokensPerMinute) : '',
    budgetOn: !!key?.budget,
    period: key?.budget?.period ?? 'MONTH',
    currency: key?.budget?.currency ?? 'CNY',
    limit: key?.budget ? microsToDecimal(key.budget.limitMicros) : '',
  };
}

/** A limit field: empty is none; otherwise a whole number of at least 1 (NaN when it is not). */
function limitOf(value: string): number | null {
  const v = value.trim();
  if (!v) return null;
  return /^\d{1,10}$/.test(v) && Number(v) >= 1 && Number(v) <= 2_147_483_647 ? Number(v) : NaN;
}

export function KeyForm({
  editing,
  onClose,
  onCreated,
  onSaved,
}: {
  /** The key being edited; null to create one. */
  editing: ApiKey | null;
  onClose(): void;
  onCreated(created: Created): void;
  onSaved(name: string): void;
}) {
  const t = useText(text);
  const c = useText(common);
  const initial = useMemo(() => formOf(editing), [editing]);
  const [form, setForm] = useState<Form>(initial);
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    setForm(initial);
    setProblem(undefined);
    setError(undefined);
  }, [initial]);
  const models = useQuery<{ models: ModelChoice[] }>(MODELS);
  // Every callable model, and any the key lists that is not callable now (so it can be unticked).
  const choices = useMemo(() => {
    const names = (models.data?.models ?? []).map((m) => `${m.provider}/${m.id}`);
    return [...new Set([...names, ...form.models])].sort();
  }, [models.data, form.models]);
  const displayNames = useMemo(
    () => new Map((models.data?.models ?? []).map((m) => [`${m.provider}/${m.id}`, m.displayName])),
    [models.data],
  );
  const set = <K extends keyof Form>(key: K, value: Form[K]) => setForm((f) => ({ ...f, [key]: value }));
  const budgetKept = !!editing?.budget && form.budgetOn;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    const name = form.name.trim();
    if (!name || name.length > 100) return setProblem(t.needName);
    const rpm = limitOf(form.rpm);
    const tpm = limitOf(form.tpm);
    if (Number.isNaN(rpm) || Number.isNaN(tpm)) return setProblem(t.badInt);
    if (form.expires && form.expires < serverToday()) return setProblem(t.badDate);
    let budget: { period: Period; currency: string; limitMicros: string } | null = null;
    if (form.budgetOn) {
      const limitMicros = decimalToMicros(form.limit);
      const currency = form.currency.trim().toUpperCase();
      if (limitMicros == null) return setProblem(t.badAmount);
      if (!/^[A-Z]{3}$/.test(currency)) return setProblem(t.badCurrency);
      budget = { period: form.period, currency, limitMicros };
    }
    setProblem(undefined);
    // The key stops working when the chosen day ends in the server's zone.
    const expiresAt = form.expires ? serverDayStart(addDays(form.expires, 1)) ?? null : null;
    const allowedModels = form.models.length ? [...form.models].sort() : null;
    setBusy(true);
    try {
      if (!editing) {
        const input: Record<string, unknown> = { name, scope: form.scope };
        if (allowedModels) input.allowedModels = allowedModels;
        if (rpm != null) input.requestsPerMinute = rpm;
        if (tpm != null) input.tokensPerMinute = tpm;
        if (expiresAt) input.expiresAt = expiresAt;
        if (budget) input.budget = budget;
        const d = await request<{ createApiKey: Created }>(CREATE, { input });
        onCreated(d.createApiKey);
      } else {
        const input: Record<string, unknown> = {};
        if (name !== initial.name) input.name = name;
        if (form.scope !== initial.scope) input.scope = form.scope;
        if (JSON.stringify(allowedModels) !== JSON.stringify(initial.models.length ? [...initial.models].sort() : null))
          input.allowedModels = allowedModels;
        if (form.rpm.trim() !== initial.rpm) input.requestsPerMinute = rpm;
        if (form.tpm.trim() !== initial.tpm) input.tokensPerMinute = tpm;
        if (form.expires !== initial.expires) input.expiresAt = expiresAt;
        const budgetWas = initial.budgetOn
          ? { period: initial.period, currency: initial.currency, limitMicros: decimalToMicros(initial.limit) }
          : null;
        if (JSON.stringify(budget) !== JSON.stringify(budgetWas)) input.budget = budget;
        if (Object.keys(input).length) await request(UPDATE, { id: editing.id, input });
        onSaved(name);
      }
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog open title={editing ? t.editTitle(editing.name) : t.createTitle} onClose={onClose}>
      <form className="keys-form" onSubmit={(e) => void submit(e)} noValidate>
        <Field label={t.name} hint={t.nameHint}>
          <input value={form.name} maxLength={100} required onChange={(e) => set('name', e.target.value)} autoComplete="off" />
        </Field>
        <fieldset>
          <legend>{t.scope}</legend>
          {SCOPES.map((s) => (
            <label className="keys-choice" key={s}>
              <input type="radio" name="scope" value={s} checked={form.scope === s} onChange={() => set('scope', s)} />
              <span>
                <strong>{t[s]}</strong> <span className="muted">{s === 'CHAT' ? t.scopeChatHint : t.scopeFullHint}</span>
              </span>
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>{t.modelsLegend}</legend>
          <p className="muted keys-hint">{t.modelsHint}</p>
          <ErrorBox error={models.error} onRetry={models.reload} />
          {models.data && choices.length === 0 && <p className="muted">{t.noModels}</p>}
          <div className="keys-models">
            {choices.map((m) => (
              <label className="checkbox" key={m}>
                <input
                  type="checkbox"
                  checked={form.models.includes(m)}
                  onChange={(e) => set('models', e.target.checked ? [...form.models, m] : form.models.filter((x) => x !== m))}
                />
                <code>{m}</code>
                {displayNames.get(m) && displayNames.get(m) !== m.split('/').slice(1).join('/') && (
                  <span className="muted">{displayNames.get(m)}</span>
                )}
              </label>
            ))}
          </div>
        </fieldset>
        <div className="row">
          <Field label={t.expiresLabel} hint={t.expiresHint(serverZone() ?? Intl.DateTimeFormat().resolvedOptions().timeZone)}>
            <input type="date" value={form.expires} min={serverToday()} onChange={(e) => set('expires', e.target.value)} />
          </Field>
        </div>
        <div className="row">
          <Field label={t.rpmLabel}>
            <input inputMode="numeric" value={form.rpm} onChange={(e) => set('rpm', e.target.value)} autoComplete="off" />
          </Field>
          <Field label={t.tpmLabel}>
            <input inputMode="numeric" value={form.tpm} onChange={(e) => set('tpm', e.target.value)} autoComplete="off" />
          </Field>
        </div>
        <p className="muted keys-hint">{t.limitsHint}</p>
        <fieldset>
          <legend>{t.budgetLegend}</legend>
          <label className="checkbox">
            <input type="checkbox" checked={form.budgetOn} onChange={(e) => set('budgetOn', e.target.checked)} />
            {t.budgetOn}
          </label>
          {form.budgetOn && (
            <>
              <div className="row">
                <Field label={t.period}>
                  <select value={form.period} disabled={budgetKept} onChange={(e) => set('period', e.target.value as Period)}>
                    {PERIODS.map((p) => (
                      <option key={p} value={p}>
                        {t[p]}
                      </option>
                    ))}
                  </select>
                </Field>
                <Field label={t.currency}>
                  <input
                    value={form.currency}
                    disabled={budgetKept}
                    maxLength={3}
                    size={4}
                    onChange={(e) => set('currency', e.target.value)}
                    autoComplete="off"
                  />
                </Field>
                <Field label={t.limitAmount}>
                  <input inputMode="decimal" value={form.limit} placeholder="25.00" onChange={(e) => set('limit', e.target.value)} autoComplete="off" />
                </Field>
              </div>
              <p className="muted keys-hint">{budgetKept ? t.budgetKept : t.budgetHint}</p>
            </>
          )}
        </fieldset>
        {problem && (
          <p className="error" role="alert">
            {problem}
          </p>
        )}
        <ErrorBox error={error} />
        <div className="dialog-actions">
          <button type="button" onClick={onClose}>
            {c.cancel}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {editing ? c.save : c.create}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
