/** What the admin's alerts page and the user's own alerts page share: an alert with its
 * deliveries, shown as a table. */
import { gql } from '../../api/gql';
import { defineText, useLang, useText } from '../../i18n';
import { Badge, Table } from '../../ui/components';
import { dateTime } from '../../ui/format';

/** Alerts sent, newest first (all for an admin, the user's own otherwise), optionally one rule's. */
export const ALERTS = gql`
  query AlertsSent($ruleId: ID, $first: Int, $after: String) {
    alerts(ruleId: $ruleId, first: $first, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        ruleId
        subject
        state
        severity
        title
        body
        at
        deliveries {
          channel
          recipient
          status
          attempts
          lastError
          nextAttemptAt
          deliveredAt
        }
      }
    }
  }
`;

/** Alerts as they fire or resolve (the same visibility as `ALERTS`). */
export const FIRED = gql`
  subscription AlertsFired {
    alertFired {
      id
      ruleId
      subject
      state
      severity
      title
      body
      at
      deliveries {
        channel
        recipient
        status
        attempts
        lastError
        nextAttemptAt
        deliveredAt
      }
    }
  }
`;


export interface Delivery {
  channel: string;
  recipient: string | null;
  status: 'PENDING' | 'SENDING' | 'DELIVERED' | 'FAILED';
  attempts: number;
  lastError: string | null;
  nextAttemptAt: string;
  deliveredAt: string | null;
}

export interface Alert {
  id: string;
  ruleId: string;
  subject: string;
  state: string;
  severity: string;
  title: string;
  body: string;
  at: string;
  deliveries: Delivery[];
}

export const alertsText = defineText({
  en: {
    alerts: 'Alerts',
    at: 'Time',
    rule: 'Rule',
    subject: 'Subject',
    severity: 'Severity',
    alert: 'Alert',
    deliveries: 'Deliveries',
    attempts: (n: number) => (n === 1 ? '1 attempt' : `${n} attempts`),
    noDeliveries: 'none',
    PENDING: 'Pending',
    SENDING: 'Sending',
    DELIVERED: 'Delivered',
    FAILED: 'Failed',
    FIRING: 'Firing',
    RESOLVED: 'Resolved',
    WARNING: 'Warning',
    CRITICAL: 'Critical',
  },
  zh: {
    alerts: '告警',
    at: '时间',
    rule: '规则',
    subject: '对象',
    severity: '严重程度',
    alert: '告警内容',
    deliveries: '投递',
    attempts: (n: number) => `尝试 ${n} 次`,
    noDeliveries: '无',
    PENDING: '等待中',
    SENDING: '发送中',
    DELIVERED: '已送达',
    FAILED: '失败',
    FIRING: '触发中',
    RESOLVED: '已恢复',
    WARNING: '警告',
    CRITICAL: '严重',
  },
});

const STATUS_TONE = { PENDING: 'info', SENDING: 'info', DELIVERED: 'ok', FAILED: 'bad' } as const;

export function AlertFeed({ alerts, ruleName, label }: { alerts: Alert[]; ruleName(id: string): string; label: string }) {
  const t = useText(alertsText);
  const { locale } = useLang();
  return (
    <Table<Alert>
      caption={label}
      rows={alerts}
      rowKey={(a) => a.id}
      columns={[
        { key: 'at', title: t.at, render: (a) => <span className="nowrap">{dateTime(a.at, locale)}</span> },
        { key: 'rule', title: t.rule, render: (a) => ruleName(a.ruleId) },
        {
          key: 'severity',
          title: t.severity,
          render: (a) => (
            <Badge tone={a.state === 'RESOLVED' ? 'ok' : a.severity === 'CRITICAL' ? 'bad' : 'warn'}>
              {a.state === 'RESOLVED' ? t.RESOLVED : `${t.FIRING} · ${a.severity === 'CRITICAL' ? t.CRITICAL : a.severity === 'WARNING' ? t.WARNING : a.severity}`}
            </Badge>
          ),
        },
        { key: 'subject', title: t.subject, render: (a) => <code>{a.subject}</code> },
        {
          key: 'alert',
          title: t.alert,
          render: (a) => (
            <>
              <strong>{a.title}</strong>
              <div className="muted">{a.body}</div>
            </>
          ),
        },
        {
          key: 'deliveries',
          title: t.deliveries,
          render: (a) =>
            a.deliveries.length === 0 ? (
              <span className="muted">{t.noDeliveries}</span>
            ) : (
              <ul className="deliveries">
                {a.deliveries.map((d, i) => (
                  <li key={`${d.channel}-${i}`}>
                    <code>{d.channel}</code>
                    {d.recipient && <span className="muted"> → {d.recipient}</span>}{' '}
                    <Badge tone={STATUS_TONE[d.status]}>{t[d.status]}</Badge> <span className="muted">{t.attempts(d.attempts)}</span>
                    {d.lastError && <div className="bad-text">{d.lastError}</div>}
                  </li>
                ))}
              </ul>
            ),
        },
      ]}
    />
  );
}
