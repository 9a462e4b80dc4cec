/**
 * The admin overview: calls, error rate, latency and active users over a chosen window; spend
 * today and this month (one amount per currency); provider health; and live feeds of everyone's
 * calls and of alerts. The tiles refresh (debounced) whenever a call finishes.
 */
import { useCallback, useState } from 'react';
import type { ViewProps } from '../../App';
import { gql } from '../../api/gql';
import { useQuery, useSubscription } from '../../api/hooks';
import { common } from '../../i18n/common';
import { defineText, useLang, useText } from '../../i18n';
import { navigate } from '../../router';
import { Badge, ErrorBox, Field, LiveDot, Loading, Table, Tile, Tiles, Page } from '../../ui/components';
import { count, dateTime, money, ms, percent, time } from '../../ui/format';
import { monthStart, personLabel, today, totalsByCurrency, useDebounced, usePeople } from './costsShared';
import './Overview.css';

const text = defineText({
  en: {
    title: 'Overview',
    window: 'Window',
    w60: 'Last 60 minutes',
    w1440: 'Last 24 hours',
    w10080: 'Last 7 days',
    calls: 'Calls',
    failed: (n: number) => `${n} failed`,
    errorRate: 'Error rate',
    p50: 'Latency p50',
    p95: 'Latency p95',
    activeUsers: 'Active users',
    spendToday: 'Spend today',
    spendMonth: 'Spend this month',
    nothingSpent: 'Nothing spent',
    providers: 'Provider health',
    provider: 'Provider',
    state: 'State',
    failedCol: 'Failed',
    lastSuccess: 'Last success',
    lastFailure: 'Last failure',
    IDLE: 'Idle',
    HEALTHY: 'Healthy',
    DEGRADED: 'Degraded',
    FAILING: 'Failing',
    liveCalls: 'Live calls',
    liveCallsHint: 'Everyone’s calls as they start and finish, newest first.',
    noCalls: 'No calls since this page opened.',
    liveAlerts: 'Live alerts',
    noAlerts: 'No alerts since this page opened.',
    PENDING: 'Pending',
    SUCCEEDED: 'Succeeded',
    FAILED: 'Failed',
    CANCELLED: 'Cancelled',
    FIRING: 'Firing',
    RESOLVED: 'Resolved',
    user: 'User',
    cost: 'Cost',
    latency: 'Latency',
    since: (when: string) => `Since ${when}`,
    cached: 'cached',
  },
  zh: {
    title: '总览',
    window: '时间窗口',
    w60: '最近 60 分钟',
    w1440: '最近 24 小时',
    w10080: '最近 7 天',
    calls: '调用次数',
    failed: (n: number) => `失败 ${n} 次`,
    errorRate: '错误率',
    p50: '延迟 p50',
    p95: '延迟 p95',
    activeUsers: '活跃用户',
    spendToday: '今日花费',
    spendMonth: '本月花费',
    nothingSpent: '暂无花费',
    providers: '服务商健康状况',
    provider: '服务商',
    state: '状态',
    failedCol: '失败',
    lastSuccess: '最近成功',
    lastFailure: '最近失败',
    IDLE: '空闲',
    HEALTHY: '健康',
    DEGRADED: '降级',
    FAILING: '故障',
    liveCalls: '实时调用',
    liveCallsHint: '所有人的调用，开始与结束时实时显示，最新的在前。',
    noCalls: '打开本页以来还没有调用。',
    liveAlerts: '实时告警',
    noAlerts: '打开本页以来还没有告警。',
    PENDING: '进行中',
    SUCCEEDED: '成功',
    FAILED: '失败',
    CANCELLED: '已取消',
    FIRING: '触发中',
    RESOLVED: '已恢复',
    user: '用户',
    cost: '费用',
    latency: '延迟',
    since: (when: string) => `自 ${when} 起`,
    cached: '缓存',
  },
});

const WINDOWS = [60, 1440, 10080] as const;

const STATS = gql`
  query OverviewStats($windowMinutes: Int!) {
    systemStats(windowMinutes: $windowMinutes) {
      windowMinutes
      since
      calls
      failed
      errorRate
      p50LatencyMs
      p95LatencyMs
      activeUsers
      providers {
        provider
        state
        calls
        failed
        errorRate
        lastSuccessAt
        lastFailureAt
      }
    }
  }
`;

const SPEND = gql`
  query OverviewSpend($range: DateRange!) {
    usage(range: $range, groupBy: [DAY]) {
      day
      currency
      costMicros
    }
  }
`;

const CALLS = gql`
  subscription OverviewCalls {
    aiCallUpdated {
      id
      userId
      provider
      model
      status
      errorCode
      costMicros
      currency
      cached
      latencyMs
      startedAt
    }
  }
`;

const ALERTS = gql`
  subscription OverviewAlerts {
    alertFired {
      id
      subject
      state
      severity
      title
      body
      at
    }
  }
`;

type ProviderState = 'IDLE' | 'HEALTHY' | 'DEGRADED' | 'FAILING';

interface ProviderHealth {
  provider: string;
  state: ProviderState;
  calls: number;
  failed: number;
  errorRate: number;
  lastSuccessAt: string | null;
  lastFailureAt: string | null;
}

interface Stats {
  systemStats: {
    windowMinutes: number;
    since: string;
    calls: number;
    failed: number;
    errorRate: number;
    p50LatencyMs: number | null;
    p95LatencyMs: number | null;
    activeUsers: number;
    providers: ProviderHealth[];
  };
}

interface SpendRow {
  day: string;
  currency: string | null;
  costMicros: string;
}

type CallStatus = 'PENDING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

interface LiveCall {
  id: string;
  userId: string;
  provider: string;
  model: string;
  status: CallStatus;
  errorCode: string | null;
  costMicros: string;
  currency: string | null;
  cached: boolean;
  latencyMs: number | null;
  startedAt: string;
}

interface LiveAlert {
  id: string;
  subject: string;
  state: string;
  severity: string;
  title: string;
  body: string;
  at: string;
}

const FEED_MAX = 50;

const STATE_TONE: Record<ProviderState, 'ok' | 'warn' | 'bad' | 'muted'> = {
  IDLE: 'muted',
  HEALTHY: 'ok',
  DEGRADED: 'warn',
  FAILING: 'bad',
};

const STATUS_TONE: Record<CallStatus, 'ok' | 'bad' | 'info' | 'muted'> = {
  PENDING: 'info',
  SUCCEEDED: 'ok',
  FAILED: 'bad',
  CANCELLED: 'muted',
};

function severityTone(severity: string): 'bad' | 'warn' | 'ok' | 'info' {
  if (severity === 'CRITICAL') return 'bad';
  if (severity === 'WARNING') return 'warn';
  if (severity === 'RESOLVED') return 'ok';
  return 'info';
}

export function Overview({ route }: ViewProps) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const asked = Number(route.params.get('window'));
  const windowMinutes = (WINDOWS as readonly number[]).includes(asked) ? asked : 60;

  const stats = useQuery<Stats>(STATS, { windowMinutes });
  const day = today();
  const spend = useQuery<{ usage: SpendRow[] }>(SPEND, { range: { from: monthStart(day), to: day } });

  const [calls, setCalls] = useState<LiveCall[]>([]);
  const [alerts, setAlerts] = useState<LiveAlert[]>([]);
  const refreshTiles = useDebounced(() => {
    stats.reload();
    spend.reload();
  }, 1_000);

  const onCall = useCallback(
    (data: { aiCallUpdated: LiveCall }) => {
      const call = data.aiCallUpdated;
      setCalls((list) => {
        const at = list.findIndex((x) => x.id === call.id);
        if (at >= 0) {
          // A late PENDING never hides the call's end.
          if (call.status === 'PENDING' && list[at].status !== 'PENDING') return list;
          const next = list.slice();
          next[at] = call;
          return next;
        }
        return [call, ...list].slice(0, FEED_MAX);
      });
      if (call.status !== 'PENDING') refreshTiles();
    },
    [refreshTiles],
  );
  const callsLive = useSubscription(CALLS, undefined, onCall);
  const alertsLive = useSubscription<{ alertFired: LiveAlert }>(ALERTS, undefined, (data) =>
    setAlerts((list) => [data.alertFired, ...list.filter((a) => a.id !== data.alertFired.id)].slice(0, FEED_MAX)),
  );
  const errorText = (code: string) => {
    const known = (c as Record<string, unknown>)[code];
    return typeof known === 'string' ? known : code;
  };
  const people = usePeople(calls.map((x) => x.userId));

  const s = stats.data?.systemStats;
  const rows = spend.data?.usage ?? [];
  const spentToday = totalsByCurrency(rows.filter((r) => r.day === day));
  const spentMonth = totalsByCurrency(rows);
  const amounts = (totals: [string, bigint][]) =>
    totals.length === 0 ? (
      <span className="muted">{t.nothingSpent}</span>
    ) : (
      <span className="amounts">
        {totals.map(([currency, total]) => (
          <span key={currency || '-'} className="amount">
            {money(total, currency || null, locale)}
          </span>
        ))}
      </span>
    );

  return (
    <Page
      title={t.title}
      actions={
        <Field label={t.window}>
          <select
            value={windowMinutes}
            onChange={(e) => navigate('/overview', { window: e.target.value === '60' ? undefined : e.target.value }, true)}
          >
            {WINDOWS.map((w) => (
              <option key={w} value={w}>
                {t[`w${w}`]}
              </option>
            ))}
          </select>
        </Field>
      }
    >
      <ErrorBox error={stats.error} onRetry={stats.reload} />
      <ErrorBox error={spend.error} onRetry={spend.reload} />
      <Loading show={stats.loading && !s} />
      <Tiles>
        <Tile label={t.calls} value={count(s?.calls, locale)} hint={s ? t.failed(s.failed) : undefined} />
        <Tile label={t.errorRate} value={percent(s?.errorRate, locale)} />
        <Tile label={t.p50} value={ms(s?.p50LatencyMs, locale)} />
        <Tile label={t.p95} value={ms(s?.p95LatencyMs, locale)} />
        <Tile label={t.activeUsers} value={count(s?.activeUsers, locale)} />
        <Tile label={t.spendToday} value={spend.data ? amounts(spentToday) : '—'} />
        <Tile label={t.spendMonth} value={spend.data ? amounts(spentMonth) : '—'} />
      </Tiles>
      {s && <p className="muted overview-since">{t.since(dateTime(s.since, locale))}</p>}

      <section className="card overview-card" aria-labelledby="overview-providers">
        <h2 id="overview-providers">{t.providers}</h2>
        <Table<ProviderHealth>
          rows={s?.providers ?? []}
          rowKey={(p) => p.provider}
          columns={[
            { key: 'provider', title: t.provider, render: (p) => p.provider },
            { key: 'state', title: t.state, render: (p) => <Badge tone={STATE_TONE[p.state]}>{t[p.state]}</Badge> },
            { key: 'calls', title: t.calls, numeric: true, render: (p) => count(p.calls, locale) },
            { key: 'failed', title: t.failedCol, numeric: true, render: (p) => count(p.failed, locale) },
            { key: 'rate', title: t.errorRate, numeric: true, render: (p) => percent(p.errorRate, locale) },
            { key: 'ok', title: t.lastSuccess, render: (p) => dateTime(p.lastSuccessAt, locale) },
            { key: 'bad', title: t.lastFailure, render: (p) => dateTime(p.lastFailureAt, locale) },
          ]}
        />
      </section>

      <div className="grid-2">
        <section className="card overview-card" aria-labelledby="overview-calls">
          <div className="overview-feed-head">
            <h2 id="overview-calls">{t.liveCalls}</h2>
            <LiveDot error={callsLive.error} />
          </div>
          <p className="muted">{t.liveCallsHint}</p>
          {calls.length === 0 ? (
            <p className="muted">{t.noCalls}</p>
          ) : (
            <ul className="feed" aria-label={t.liveCalls} data-testid="call-feed">
              {calls.map((call) => (
                <li key={call.id} data-call-id={call.id}>
                  <Badge tone={STATUS_TONE[call.status]}>{t[call.status]}</Badge>
                  <span className="muted">{time(call.startedAt, locale)}</span>
                  <span title={call.userId}>{personLabel(people, call.userId)}</span>
                  <span>
                    {call.provider}/{call.model}
                  </span>
                  <span className="overview-cost">
                    {call.status === 'PENDING' ? '—' : money(call.costMicros, call.currency, locale)}
                    {call.cached && <span className="muted"> ({t.cached})</span>}
                  </span>
                  <span className="muted">{ms(call.latencyMs, locale)}</span>
                  {call.errorCode && <code title={errorText(call.errorCode)}>{call.errorCode}</code>}
                </li>
              ))}
            </ul>
          )}
        </section>
        <section className="card overview-card" aria-labelledby="overview-alerts">
          <div className="overview-feed-head">
            <h2 id="overview-alerts">{t.liveAlerts}</h2>
            <LiveDot error={alertsLive.error} />
          </div>
          {alerts.length === 0 ? (
            <p className="muted">{t.noAlerts}</p>
          ) : (
            <ul className="feed" aria-label={t.liveAlerts}>
              {alerts.map((a) => (
                <li key={a.id}>
                  <Badge tone={severityTone(a.severity)}>{a.state === 'RESOLVED' ? t.RESOLVED : t.FIRING}</Badge>
                  <span className="muted">{time(a.at, locale)}</span>
                  <strong>{a.title}</strong>
                  <span className="muted">{a.subject}</span>
                  <span className="overview-alert-body">{a.body}</span>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
    </Page>
  );
}
