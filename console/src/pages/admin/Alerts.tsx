/**
 * Alerting (admin): the rules (create, edit, turn on and off, delete), the alerts they sent with
 * each delivery, new alerts live as they fire, and a test message through any notifier.
 */
import { useState } from 'react';
import type { ViewProps } from '../../App';
import { ApiError, request, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useLang, useText } from '../../i18n';
import { Badge, Dialog, ErrorBox, Loading, Page, Table } from '../../ui/components';
import { dateTime } from '../../ui/format';
import { PARAMS, type Rule } from './alertRules';
import { text } from './Alerts.text';
import { RuleForm } from './RuleForm';
import { SentAlerts } from './SentAlerts';
import { TestNotification } from './TestNotification';
import '../ops.css';

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
      setActionError(toApiError(e));
    }
  };
  const remove = async (rule: Rule) => {
    if (!window.confirm(`${rule.name}: ${c.confirmDelete}`)) return;
    setActionError(undefined);
    try {
      await request(DELETE, { id: rule.id });
      rules.reload();
    } catch (e) {
      setActionError(toApiError(e));
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
