/** The alerts the rules sent, filterable by rule and paged, with new alerts added live as they fire. */
import { useState } from 'react';
import { useQuery, useSubscription } from '../../api/hooks';
import { useText } from '../../i18n';
import { ErrorBox, Field, LiveDot, Loading, Pager, usePager } from '../../ui/components';
import { ALERTS, AlertFeed, FIRED, alertsText, type Alert } from '../user/alertsShared';
import type { Rule } from './alertRules';
import { text } from './Alerts.text';

export function SentAlerts({ rules, ruleName }: { rules: Rule[]; ruleName(id: string): string }) {
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
