/**
 * Alerting (admin): the rules (create, edit, turn on and off, delete), the alerts they sent with
 * each delivery, new alerts live as they fire, and a test message through any notifier.
 */
import { useState, type FormEvent } from 'react';
import type { ViewProps } from '../../App';
import { ApiError, request } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery, useSubscription } from '../../api/hooks';
import { common } from '../../i18n/common';
import { defineText, useLang, useText } from '../../i18n';
import { Badge, Dialog, ErrorBox, Field, LiveDot, Loading, Page, Pager, Table, usePager } from '../../ui/components';
import { dateTime } from '../../ui/format';
import { ALERTS, AlertFeed, FIRED, alertsText, type Alert } from '../user/alertsShared';
import '../ops.css';

const text = defineText({
  en: {
    title: 'Alerts',
    rules: 'Alert rules',
    newRule: 'New rule',
    editRule: 'Edit rule',
    name: 'Name',
    kind: 'What it watches',
    kindFixed: 'The kind cannot change after creation.',
    params: 'Settings',
    targets: 'Send to',
    noNotifiers: 'No notifier instance is loaded: configure one (see Plugins) before creating a rule.',
    to: 'Own recipient (optional)',
    cooldown: 'Cooldown (seconds)',
    cooldownHint: '0 to 604800; the least time between two firings',
    enabled: 'Enabled',
    lastFired: 'Last fired',
    owner: 'Owner',
    ownerAdmin: 'admin rule',
    ownerUser: 'a user’s own',
    actions: 'Actions',
    enable: 'Enable',
    disable: 'Disable',
    thresholdPercent: 'Threshold (%)',
    windowSecs: 'Window (seconds)',
    minCalls: 'Minimum calls',
    consecutiveFailures: 'Failures in a row',
    latencyMs: 'p95 latency limit (ms)',
    provider: 'Provider (empty: all)',
    model: 'Model (empty: all)',
    budgetId: 'Budget id (empty: all)',
    plugin: 'Plugin (empty: all)',
    BUDGET_THRESHOLD: 'Budget threshold',
    ERROR_RATE: 'Error rate',
    PROVIDER_FAILING: 'Provider failing',
    LATENCY_P95: 'p95 latency',
    PLUGIN_FAILED: 'Plugin failed to load',
    pickTarget: 'Pick at least one notifier.',
    needName: 'Give the rule a name.',
    badNumber: (what: string) => `${what}: enter a whole number.`,
    sent: 'Alerts sent',
    rule: 'Rule',
    allRules: 'All rules',
    test: 'Send a test notification',
    channel: 'Notifier',
    message: 'Message',
    defaultMessage: 'Test notification from the CloudBase AI console',
    send: 'Send',
    delivered: 'Delivered',
    notDelivered: 'Not delivered',
  },
  zh: {
    title: '告警',
    rules: '告警规则',
    newRule: '新建规则',
    editRule: '编辑规则',
    name: '名称',
    kind: '监控内容',
    kindFixed: '规则创建后类型不可更改。',
    params: '参数',
    targets: '发送到',
    noNotifiers: '没有已加载的通知渠道实例：请先配置一个（见“插件与模型”），再创建规则。',
    to: '单独的接收地址（可选）',
    cooldown: '冷却时间（秒）',
    cooldownHint: '0 到 604800；两次触发之间的最短间隔',
    enabled: '启用',
    lastFired: '上次触发',
    owner: '所有者',
    ownerAdmin: '管理员规则',
    ownerUser: '用户个人规则',
    actions: '操作',
    enable: '启用',
    disable: '停用',
    thresholdPercent: '阈值（%）',
    windowSecs: '时间窗口（秒）',
    minCalls: '最少调用次数',
    consecutiveFailures: '连续失败次数',
    latencyMs: 'p95 延迟上限（毫秒）',
    provider: '服务商（留空表示全部）',
    model: '模型（留空表示全部）',
    budgetId: '预算 ID（留空表示全部）',
    plugin: '插件（留空表示全部）',
    BUDGET_THRESHOLD: '预算阈值',
    ERROR_RATE: '错误率',
    PROVIDER_FAILING: '服务商连续失败',
    LATENCY_P95: 'p95 延迟',
    PLUGIN_FAILED: '插件加载失败',
    pickTarget: '请至少选择一个通知渠道。',
    needName: '请为规则命名。',
    badNumber: (what: string) => `${what}：请输入整数。`,
    sent: '已发送的告警',
    rule: '规则',
    allRules: '全部规则',
    test: '发送测试通知',
    channel: '通知渠道',
    message: '消息',
    defaultMessage: '来自 CloudBase AI 控制台的测试通知',
    send: '发送',
    delivered: '已送达',
    notDelivered: '未送达',
  },
});

const KINDS = ['BUDGET_THRESHOLD', 'ERROR_RATE', 'PROVIDER_FAILING', 'LATENCY_P95', 'PLUGIN_FAILED'] as const;
type Kind = (typeof KINDS)[number];
type ParamKey = 'thresholdPercent' | 'windowSecs' | 'minCalls' | 'consecutiveFailures' | 'latencyMs' | 'provider' | 'model' | 'budgetId' | 'plugin';
const NUMERIC: ParamKey[] = ['thresholdPercent', 'windowSecs', 'minCalls', 'consecutiveFailures', 'latencyMs'];

/** The settings that apply to each kind. */
const PARAMS: Record<Kind, ParamKey[]> = {
  BUDGET_THRESHOLD: ['thresholdPercent', 'budgetId'],
  ERROR_RATE: ['thresholdPercent', 'windowSecs', 'minCalls', 'provider', 'model'],
  PROVIDER_FAILING: ['consecutiveFailures', 'provider'],
  LATENCY_P95: ['latencyMs', 'windowSecs', 'minCalls', 'provider', 'model'],
  PLUGIN_FAILED: ['plugin'],
};

type Params = Partial<Record<ParamKey, string | number | null>>;

interface Rule {
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

const RULES = gql`
  query AlertsPageRules {
    alertRules {
      id
      name
      kind
      params {
        thresholdPercent
        windowSecs
        minCalls
        consecutiveFailures
        latencyMs
        provider
        model
        budgetId
        plugin
      }
      targets {
        channel
        to
      }
      cooldownSecs
      enabled
      ownerId
      lastFiredAt
    }
  }
`;

const PLUGINS = gql`
  query AlertsPagePlugins {
    plugins {
      name
      instance
      kind
      status
    }
  }
`;

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

const SET_ENABLED = gql`
  mutation AlertsPageSetEnabled($id: ID!, $enabled: Boolean!) {
    setAlertRuleEnabled(id: $id, enabled: $enabled) {
      id
      enabled
    }
  }
`;

const DELETE = gql`
  mutation AlertsPageDelete($id: ID!) {
    deleteAlertRule(id: $id)
  }
`;

const TEST = gql`
  mutation AlertsPageTest($channel: String!, $message: String!) {
    testNotification(channel: $channel, message: $message) {
      channel
      ok
      detail
    }
  }
`;

function asError(e: unknown) {
  return e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL');
}

export function Alerts(_props: ViewProps) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const rules = useQuery<{ alertRules: Rule[] }>(RULES);
  const plugins = useQuery<{ plugins: { name: string; instance: string | null; kind: string | null; status: string }[] }>(PLUGINS);
  const notifiers = (plugins.data?.plugins ?? [])
    .filter((p) => p.kind === 'NOTIFIER' && p.status === 'LOADED' && p.instance)
    .map((p) => p.instance as string);
  const [editing, setEditing] = useState<Rule | 'new' | null>(null);
  const [actionError, setActionError] = useState<ApiError>();

  const setEnabled = async (rule: Rule, enabled: boolean) => {
    setActionError(undefined);
    try {
      await request(SET_ENABLED, { id: rule.id, enabled });
      rules.reload();
    } catch (e) {
      setActionError(asError(e));
    }
  };
  const remove = async (rule: Rule) => {
    if (!window.confirm(`${rule.name}: ${c.confirmDelete}`)) return;
    setActionError(undefined);
    try {
      await request(DELETE, { id: rule.id });
      rules.reload();
    } catch (e) {
      setActionError(asError(e));
    }
  };
  const ruleName = (id: string) => rules.data?.alertRules.find((r) => r.id === id)?.name ?? id.slice(0, 8);

  return (
    <Page
      title={t.title}
      actions={
        <button type="button" onClick={() => setEditing('new')}>
          {t.newRule}
        </button>
      }
    >
      <section className="card" aria-labelledby="alert-rules">
        <h2 id="alert-rules">{t.rules}</h2>
        <ErrorBox error={rules.error} onRetry={rules.reload} />
        <ErrorBox error={actionError} />
        <Loading show={rules.loading && !rules.data} />
        {rules.data && (
          <Table<Rule>
            rows={rules.data.alertRules}
            rowKey={(r) => r.id}
            columns={[
              { key: 'name', title: t.name, render: (r) => r.name },
              { key: 'kind', title: t.kind, render: (r) => t[r.kind] },
              {
                key: 'params',
                title: t.params,
                render: (r) =>
                  PARAMS[r.kind]
                    .filter((k) => r.params[k] != null)
                    .map((k) => `${t[k]}: ${r.params[k]}`)
                    .join('; ') || '—',
              },
              {
                key: 'targets',
                title: t.targets,
                render: (r) => r.targets.map((x) => (x.to ? `${x.channel} → ${x.to}` : x.channel)).join(', '),
              },
              { key: 'cooldown', title: t.cooldown, numeric: true, render: (r) => r.cooldownSecs },
              { key: 'owner', title: t.owner, render: (r) => (r.ownerId ? t.ownerUser : t.ownerAdmin) },
              {
                key: 'enabled',
                title: t.enabled,
                render: (r) => (r.enabled ? <Badge tone="ok">{c.yes}</Badge> : <Badge tone="muted">{c.no}</Badge>),
              },
              { key: 'last', title: t.lastFired, render: (r) => dateTime(r.lastFiredAt, locale) },
              {
                key: 'actions',
                title: t.actions,
                render: (r) => (
                  <span className="cell-actions">
                    <button type="button" onClick={() => void setEnabled(r, !r.enabled)} aria-label={`${r.enabled ? t.disable : t.enable} ${r.name}`}>
                      {r.enabled ? t.disable : t.enable}
                    </button>
                    {!r.ownerId && (
                      <button type="button" onClick={() => setEditing(r)} aria-label={`${c.edit} ${r.name}`}>
                        {c.edit}
                      </button>
                    )}
                    <button type="button" onClick={() => void remove(r)} aria-label={`${c.delete} ${r.name}`}>
                      {c.delete}
                    </button>
                  </span>
                ),
              },
            ]}
          />
        )}
      </section>

      <Dialog open={editing !== null} title={editing === 'new' ? t.newRule : t.editRule} onClose={() => setEditing(null)}>
        {editing !== null && (
          <RuleForm
            rule={editing === 'new' ? undefined : editing}
            notifiers={notifiers}
            onDone={() => {
              setEditing(null);
              rules.reload();
            }}
            onCancel={() => setEditing(null)}
          />
        )}
      </Dialog>

      <SentAlerts rules={rules.data?.alertRules ?? []} ruleName={ruleName} />
      <TestNotification notifiers={notifiers} />
    </Page>
  );
}

function RuleForm({
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
      setError(asError(err));
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

function SentAlerts({ rules, ruleName }: { rules: Rule[]; ruleName(id: string): string }) {
  const t = useText(text);
  const a = useText(alertsText);
  const [ruleId, setRuleId] = useState('');
  const pager = usePager(ruleId);
  const sent = useQuery<{ alerts: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: Alert[] } }>(ALERTS, {
    ruleId: ruleId || undefined,
    first: 20,
    after: pager.cursor,
  });
  const [fresh, setFresh] = useState<Alert[]>([]);
  const live = useSubscription<{ alertFired: Alert }>(FIRED, undefined, (d) =>
    setFresh((list) => [d.alertFired, ...list.filter((x) => x.id !== d.alertFired.id)].slice(0, 100)),
  );
  const rows = [
    ...(pager.page === 1 ? fresh.filter((x) => !ruleId || x.ruleId === ruleId) : []),
    ...(sent.data?.alerts.nodes ?? []),
  ].filter((x, i, all) => all.findIndex((y) => y.id === x.id) === i);
  return (
    <section className="card" aria-labelledby="alerts-sent">
      <div className="page-head">
        <h2 id="alerts-sent">{t.sent}</h2>
        <div className="page-actions">
          <LiveDot error={live.error} />
          <Field label={t.rule}>
            <select value={ruleId} onChange={(e) => setRuleId(e.target.value)}>
              <option value="">{t.allRules}</option>
              {rules.map((r) => (
                <option key={r.id} value={r.id}>
                  {r.name}
                </option>
              ))}
            </select>
          </Field>
        </div>
      </div>
      <ErrorBox error={sent.error} onRetry={sent.reload} />
      <Loading show={sent.loading && !sent.data} />
      <AlertFeed alerts={rows} ruleName={ruleName} label={a.alerts} />
      <Pager pager={pager} hasNext={!!sent.data?.alerts.pageInfo.hasNextPage} endCursor={sent.data?.alerts.pageInfo.endCursor} />
    </section>
  );
}

function TestNotification({ notifiers }: { notifiers: string[] }) {
  const t = useText(text);
  const [channel, setChannel] = useState('');
  const [message, setMessage] = useState('');
  const [result, setResult] = useState<{ channel: string; ok: boolean; detail: string }>();
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const chosen = channel || notifiers[0] || '';
  const send = async (e: FormEvent) => {
    e.preventDefault();
    setResult(undefined);
    setError(undefined);
    setBusy(true);
    try {
      const d = await request<{ testNotification: { channel: string; ok: boolean; detail: string } }>(TEST, {
        channel: chosen,
        message: message.trim() || t.defaultMessage,
      });
      setResult(d.testNotification);
    } catch (err) {
      setError(asError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card" aria-labelledby="alerts-test">
      <h2 id="alerts-test">{t.test}</h2>
      {notifiers.length === 0 ? (
        <p className="notice">{t.noNotifiers}</p>
      ) : (
        <form className="row" onSubmit={(e) => void send(e)}>
          <Field label={t.channel}>
            <select value={chosen} onChange={(e) => setChannel(e.target.value)}>
              {notifiers.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </Field>
          <Field label={t.message}>
            <input value={message} placeholder={t.defaultMessage} onChange={(e) => setMessage(e.target.value)} />
          </Field>
          <button type="submit" disabled={busy}>
            {t.send}
          </button>
        </form>
      )}
      {result && (
        <p className="verdict" role="status">
          <Badge tone={result.ok ? 'ok' : 'bad'}>{result.ok ? t.delivered : t.notDelivered}</Badge> <code>{result.channel}</code>{' '}
          <span>{result.detail}</span>
        </p>
      )}
      <ErrorBox error={error} />
    </section>
  );
}
