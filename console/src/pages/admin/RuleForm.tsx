/** The alert rule form shown in the new/edit dialog: name, kind, its settings, targets, cooldown, on/off. */
import { useState, type FormEvent } from 'react';
import { ApiError, request, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { common } from '../../i18n/common';
import { useText } from '../../i18n';
import { ErrorBox, Field } from '../../ui/components';
import { KINDS, NUMERIC, PARAMS, type Kind, type Params, type Rule } from './alertRules';
import { text } from './Alerts.text';

const CREATE = gql`
  mutation AlertsPageCreate($input: AlertRuleInput!) {
    createAlertRule(input: $input) {
      id
    }
  }
`;

const UPDATE = gql`
  mutation AlertsPageUpdate($id: ID!, $input: AlertRuleInput!) {
    updateAlertRule(id: $id, input: $input) {
      id
    }
  }
`;

export function RuleForm({
  rule,
  notifiers,
  onDone,
  onCancel,
}: {
  rule?: Rule;
  notifiers: string[];
  onDone(): void;
  onCancel(): void;
}) {
  const t = useText(text);
  const c = useText(common);
  const [name, setName] = useState(rule?.name ?? '');
  const [kind, setKind] = useState<Kind>(rule?.kind ?? 'ERROR_RATE');
  const [params, setParams] = useState<Record<string, string>>(() => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(rule?.params ?? {})) if (v != null) out[k] = String(v);
    return out;
  });
  const [targets, setTargets] = useState<Record<string, { on: boolean; to: string }>>(() => {
    const out: Record<string, { on: boolean; to: string }> = {};
    for (const x of rule?.targets ?? []) out[x.channel] = { on: true, to: x.to ?? '' };
    return out;
  });
  const [cooldown, setCooldown] = useState(String(rule?.cooldownSecs ?? 600));
  const [enabled, setEnabled] = useState(rule?.enabled ?? true);
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const channels = [...new Set([...notifiers, ...(rule?.targets.map((x) => x.channel) ?? [])])];

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setProblem(undefined);
    setError(undefined);
    if (!name.trim()) return setProblem(t.needName);
    const input: Params = {};
    for (const key of PARAMS[kind]) {
      const raw = (params[key] ?? '').trim();
      if (!raw) continue;
      if (NUMERIC.includes(key)) {
        if (!/^\d+$/.test(raw)) return setProblem(t.badNumber(t[key]));
        input[key] = Number(raw);
      } else input[key] = raw;
    }
    const chosen = channels.filter((ch) => targets[ch]?.on).map((ch) => ({ channel: ch, to: targets[ch].to.trim() || null }));
    if (chosen.length === 0) return setProblem(t.pickTarget);
    if (!/^\d+$/.test(cooldown.trim())) return setProblem(t.badNumber(t.cooldown));
    const body = { name: name.trim(), kind, params: input, targets: chosen, cooldownSecs: Number(cooldown), enabled };
    setBusy(true);
    try {
      if (rule) await request(UPDATE, { id: rule.id, input: body });
      else await request(CREATE, { input: body });
      onDone();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="stack" onSubmit={(e) => void submit(e)} noValidate>
      <Field label={t.name}>
        <input value={name} onChange={(e) => setName(e.target.value)} maxLength={100} required />
      </Field>
      <Field label={t.kind} hint={rule ? t.kindFixed : undefined}>
        <select value={kind} onChange={(e) => setKind(e.target.value as Kind)} disabled={!!rule}>
          {KINDS.map((k) => (
            <option key={k} value={k}>
              {t[k]}
            </option>
          ))}
        </select>
      </Field>
      <fieldset>
        <legend>{t.params}</legend>
        <div className="row">
          {PARAMS[kind].map((key) => (
            <Field key={key} label={t[key]}>
              <input
                value={params[key] ?? ''}
                inputMode={NUMERIC.includes(key) ? 'numeric' : undefined}
                onChange={(e) => setParams((p) => ({ ...p, [key]: e.target.value }))}
              />
            </Field>
          ))}
        </div>
      </fieldset>
      <fieldset>
        <legend>{t.targets}</legend>
        {channels.length === 0 && <p className="notice">{t.noNotifiers}</p>}
        {channels.map((ch) => (
          <div className="row" key={ch}>
            <label className="checkbox">
              <input
                type="checkbox"
                checked={!!targets[ch]?.on}
                onChange={(e) => setTargets((x) => ({ ...x, [ch]: { on: e.target.checked, to: x[ch]?.to ?? '' } }))}
              />
              {ch}
            </label>
            {targets[ch]?.on && (
              <Field label={`${t.to} (${ch})`}>
                <input value={targets[ch].to} onChange={(e) => setTargets((x) => ({ ...x, [ch]: { ...x[ch], to: e.target.value } }))} />
              </Field>
            )}
          </div>
        ))}
      </fieldset>
      <Field label={t.cooldown} hint={t.cooldownHint}>
        <input value={cooldown} inputMode="numeric" onChange={(e) => setCooldown(e.target.value)} />
      </Field>
      <label className="checkbox">
        <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
        {t.enabled}
      </label>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <ErrorBox error={error} />
      <div className="dialog-actions">
        <button type="button" onClick={onCancel}>
          {c.cancel}
        </button>
        <button type="submit" className="primary" disabled={busy}>
          {rule ? c.save : c.create}
        </button>
      </div>
    </form>
  );
}
